"""The bottleneck model: payload throughput = min over resources of each one's capacity.

For every point (one I/O size, one copy path, one set of parameters) each resource gets a
capacity in payload bytes/s: what it could carry if nothing else limited. The smallest binds.
Utilisation of a resource = throughput / its capacity; headroom = how much faster the point
would go if the binding resource were removed (next capacity / throughput - 1).

Resources:
  links        count x rate, less framing (Ethernet, IP/UDP/BTH or TCP headers, SMB headers)
  pcie         NIC host interface: line encoding, TLP overhead per read completion, descriptors
  dram         sustained bandwidth / DRAM bytes per payload byte of the path (both ends on loopback)
  cpu-serving  serving threads: per-I/O costs + copies + memory management + the send work they do
               in their own context (on loopback also the receive work their sends trigger)
  cpu-workers  io_uring async workers doing the pieces moved off the serving thread
  cpu-all      every core of the server host (serving, worker, flow work; on loopback the client's too)
  dma          DMA engines the path's kernel API reaches (zero when it reaches none)
  pipeline     outstanding I/Os x size / per-I/O latency (Little's law); on TCP also window / RTT
  cpu-flows    per-connection receive work (softirq of a NIC queue, soft-RoCE tasks): RSS hashes a
               connection to one queue, so a flow's work runs on one core; on loopback what ksoftirqd
               runs of a software RDMA NIC's chain once the kernel hands it over (below)
  client-cpu   the client's I/O threads (modelled when workload.client_cores > 0)
  client-flows the client's per-connection receive work on its NIC's queues
  socket-link  the inter-socket link (UPI, xGMI) when threads and memory spread over sockets

An I/O's network work is a chain started by the end that sends (or, with RDMA, that posts the
work request): the initiator's send work, the peer's receive work (which sends the ACKs), the
initiator's work on what comes back. Where each runs depends on the medium: through a NIC the
receive work runs in softirq on the core of the flow's queue (cpu-flows / client-flows); on
loopback (Linux lo, a veth pair between local addresses) a transmit hands the packet to netif_rx
on the transmitting CPU, so the whole chain runs on the initiator's core (with a software RDMA NIC,
until the kernel hands the rest to ksoftirqd: one softirq budget for a polling poster, on average
nic.soft_inline_time of it for one that sleeps on completion events).

Inputs are flat parameters (see scenarios.schema.flat_params) as numpy arrays that broadcast,
plus `workload.io_size` and the codes `link.protocol_code` (0 roce-v2, 1 infiniband, 2 tcp,
3 none), `link.medium_code` (0 ethernet, 1 loopback, 2 infiniband, 3 none),
`workload.operation_code` (0 read: the server sends, 1 write: it receives),
`workload.application_code` (0 smb2, 1 none), `workload.placement_code` (0 local, 1 spread,
2 unpinned), `nic.rdma_code` (0 hardware, 1 software) and `path_index`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from models import pipeline, resources
from models.copy_paths import DemandTable

RESOURCES = ("links", "pcie", "dram", "cpu-serving", "cpu-workers", "cpu-all", "dma", "pipeline",
             "cpu-flows", "client-cpu", "client-flows", "socket-link")
# which end of the transfer a resource belongs to (the report names the end that binds)
RESOURCE_END = {"links": "network", "pcie": "server", "dram": "server", "cpu-serving": "server",
                "cpu-workers": "server", "cpu-all": "server", "dma": "server", "pipeline": "in flight",
                "cpu-flows": "server", "client-cpu": "client", "client-flows": "client", "socket-link": "server"}
# how a TCP point's checksum is computed (Result.checksum): not TCP, by the NIC, in the send copy, in a pass
CHECKSUM = ("-", "NIC", "in the copy", "own pass")


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
    cores_busy: np.ndarray              # server cores kept busy at the throughput
    serving_cores_busy: np.ndarray
    worker_cores_busy: np.ndarray
    dma_engines_busy: np.ndarray        # engine-equivalents busy at the throughput
    cpu_seconds_per_byte: np.ndarray    # the server's CPU time per payload byte, where it runs
    serving_seconds_per_io: np.ndarray  # on one serving thread's core
    worker_seconds_per_io: np.ndarray
    dma_rate_per_engine: np.ndarray     # bytes/s one reachable engine moves (0 when none reachable)
    wire_bytes_per_io: np.ndarray
    dram_bytes_per_byte: np.ndarray
    link_capacity_per_link: np.ndarray  # payload bytes/s one link carries
    pcie_capacity_per_nic: np.ndarray   # payload bytes/s one NIC's host interface carries
    dma_engines_reachable: np.ndarray   # engines the path's kernel API reaches (0 when none)
    latency_seconds: np.ndarray
    flow_seconds_per_io: np.ndarray     # receive work per I/O on a flow's core (NIC; on loopback ksoftirqd)
    host_softirq_seconds_per_io: np.ndarray  # loopback: the chain ksoftirqd runs, neither end's threads
    client_seconds_per_io: np.ndarray   # on one client thread's core
    client_flow_seconds_per_io: np.ndarray
    client_cpu_seconds_per_byte: np.ndarray  # the client's CPU per payload byte (0 when not modelled)
    copy_seconds_per_io: np.ndarray     # of the server's CPU: copies (per byte and per page step)
    mm_seconds_per_io: np.ndarray       # of the server's CPU: memory management (faults, pins, unmaps, MRs)
    checksum: np.ndarray                # index into CHECKSUM
    flow_cores: np.ndarray              # cores the server's flows occupy (expected, RSS hashing)

    @property
    def utilisation(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.capacity > 0, self.throughput / self.capacity, np.inf)

    @property
    def both_ends_seconds_per_byte(self) -> np.ndarray:
        """Server + client CPU per payload byte and, on loopback, what ksoftirqd runs for them: on one
        host every CPU-second of the transfer, wherever the kernel ran it."""
        return self.cpu_seconds_per_byte + self.client_cpu_seconds_per_byte \
            + self.host_softirq_seconds_per_io / self.io_size


@dataclass
class _Chain:
    """The network work of one chain per I/O: the initiator's send work, the peer's receive work,
    the initiator's work on what comes back (ACKs, RDMA READ responses)."""
    init: np.ndarray
    peer: np.ndarray
    back: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.init + self.peer + self.back


def evaluate(p: Mapping[str, np.ndarray], table: DemandTable, engine_names: tuple[str, ...]) -> Result:
    g: Callable[[str], np.ndarray] = lambda key: np.asarray(p[key], dtype=float)  # noqa: E731
    idx = np.asarray(p["path_index"], dtype=int)
    S = g("workload.io_size")
    proto = np.asarray(p["link.protocol_code"])
    medium = np.asarray(p["link.medium_code"])
    is_tcp, is_rdma, no_net = proto == 2, proto <= 1, proto == 3
    loop = medium == 1
    through_nic = ~loop & ~no_net                     # a NIC moves the data: wire, PCIe, its DMA
    soft = is_rdma & (g("nic.rdma_code") > 0)
    smb = g("workload.application_code") == 0
    reading = g("workload.operation_code") == 0       # READ: the server sends the data
    client_on = g("workload.client_cores") > 0
    shape = np.broadcast_shapes(*[np.shape(v) for v in p.values()])
    folios = np.ceil(S / g("workload.page_bytes"))    # pages / folios of the I/O's memory
    pages4k = np.ceil(S / 4096.0)

    # --- the server holds every client's connections (incast: `clients` hosts, `connections` each)
    clients = g("workload.clients")
    conns = clients * g("workload.connections")

    # --- links: framing per I/O; a connection runs on one link, so only min(links, connections) carry data
    wire = resources.smb_wire_bytes_per_io(S, proto, g("link.mtu"), g("link.tcp_timestamps"), smb)
    links_used = np.minimum(g("link.count"), conns)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_link = np.where(through_nic, g("link.rate") * S / np.where(through_nic, wire, 1.0), np.inf)
    cap_links = np.where(through_nic, links_used * per_link, np.inf)

    # --- NUMA: share of the memory a thread touches on another socket, cores and DRAM of the sockets used
    remote = resources.remote_fraction(g("workload.placement_code"), g("cpu.sockets"))
    unpinned = g("workload.placement_code") == 2
    sockets_used = np.where(g("workload.placement_code") > 0, g("cpu.sockets"), 1.0)

    # --- copies: cold (page cache), warm (reused buffer), filled (another core / engine / NIC wrote it)
    def copy_bytes(source: str) -> np.ndarray:
        """Seconds to copy S bytes from `source`, per byte only."""
        if source == "warm":
            return resources.copy_seconds(S, g("cpu.copy_rate_cache"), g("cpu.copy_rate_dram"),
                                          g("cpu.cache_per_core"), False)
        local = g("cpu.copy_rate_dram") if source == "cold" else g("cpu.copy_rate_cross_core")
        share = remote if source == "cold" else np.where(unpinned, remote, 0.0)
        return S * ((1.0 - share) / local + share / g("cpu.copy_rate_remote"))

    # a copy out of the page cache also steps through it page by page (lookup, iterator, short copy)
    cold_bytes, warm, filled = copy_bytes("cold"), copy_bytes("warm"), copy_bytes("filled")
    cold = cold_bytes + folios * g("cpu.copy_page_time")
    t = table
    serving_copies = t.serving_cold_copies[idx] * cold + t.serving_warm_copies[idx] * warm \
        + t.serving_filled_copies[idx] * filled + t.serving_mapped_copies[idx] * cold_bytes
    worker_copies = t.worker_cold_copies[idx] * cold + t.worker_warm_copies[idx] * warm \
        + t.worker_filled_copies[idx] * filled + t.worker_mapped_copies[idx] * cold_bytes

    # --- checksum (TCP): by the NIC, in the send copy (csum_and_copy), or a pass of its own
    offload = (g("workload.checksum_offload") > 0) & ((g("nic.checksum_offload") > 0) | loop)
    in_copy = is_tcp & ~offload & (g("cpu.tcp_checksum_in_copy") > 0) & (t.send_copies[idx] > 0)
    own_pass = is_tcp & ~offload & ~in_copy
    checksum = np.where(~is_tcp, 0, np.where(offload, 1, np.where(in_copy, 2, 3)))
    csum_pass = S / g("cpu.tcp_checksum_rate")
    # one send copy becomes a copy + checksum at csum_copy_rate (never cheaper than the plain copy)
    csum_in_copy = np.maximum(S / g("cpu.csum_copy_rate") - warm, 0.0)

    # --- memory management per I/O, in passes over the I/O's pages (server side)
    unmap = folios * (g("cpu.page_fault_time") + g("cpu.unmap_page_time")) + g("cpu.tlb_shootdown_time")
    mm = (t.maps_per_io[idx] * unmap
          + t.allocs_per_io[idx] * (unmap + S / g("cpu.page_zero_rate"))
          + t.pins_per_io[idx] * (pages4k * g("cpu.pin_page_time") + folios * g("cpu.pin_folio_time"))
          + t.registrations_per_io[idx] * g("cpu.mr_register_time"))

    # --- the network chains: data (server -> client on READ) and, with SMB2, the request (client -> server)
    # what a software NIC's send copies from: its MR's pages are mapped already (no page-cache lookups)
    mr_read = np.choose(t.rdma_source[idx].astype(int), [warm, cold_bytes, filled, cold_bytes])
    data, request, counts = _chains(g, S, proto, is_tcp, soft, smb, reading, offload, own_pass,
                                    csum_pass, warm, filled, mr_read, t.rdma_wrs_per_io[idx])
    server_inits = is_rdma | reading                  # RDMA: the server posts WRITE (READ) or READ (WRITE)
    # loopback, software RDMA: an I/O's chain (the requester's packets, the receive softirq their
    # transmits raise, the ACKs back) starts in the posting task (rxe runs a user QP's requester in
    # the process that posts; each bottom-half exit runs the pending receive softirq) until the
    # kernel wakes ksoftirqd, a kernel thread of the posting CPU that is neither end's, and leaves it
    # the rest. A poster that polls finds ksoftirqd awake and keeps one bottom-half budget
    # (kernel/softirq.c); one that sleeps on completion events keeps on average what a memoryless
    # hand-over leaves it, nic.soft_inline_time measured on `measure verbs --events`. Per I/O, not
    # per post: of its two posts only the RDMA WRITE's chain can outlast either (the SEND is one packet)
    wr_kernel = t.rdma_wrs_per_io[idx] * g("nic.soft_wr_time")
    post_chain = data.init + data.peer + data.back - wr_kernel
    deferring = soft & loop & server_inits
    spin = g("workload.busy_poll") > 0
    polls = spin | (g("workload.poster_polls") > 0)
    kept = np.where(polls, np.minimum(np.maximum(post_chain, 0.0), g("cpu.softirq_budget")),
                    resources.kept_inline(post_chain, g("nic.soft_inline_time")))
    deferred = np.where(deferring, np.maximum(post_chain - kept, 0.0), 0.0)
    # a thread copying page-cache pages in the kernel meanwhile runs some of that deferred chain at
    # its interrupt exits, counted as its own time: nic.soft_copy_absorption seconds per second of
    # copying (copy.pread beside a chain against alone), taken from what ksoftirqd would run
    absorbing = np.where(deferring, g("nic.soft_copy_absorption"), 0.0)
    soak_serving = t.serving_cold_copies[idx] * cold * absorbing
    soak_workers = t.worker_cold_copies[idx] * cold * absorbing
    within = np.minimum(1.0, deferred / np.maximum(soak_serving + soak_workers, 1e-30))
    soak_serving, soak_workers = soak_serving * within, soak_workers * within

    # --- per-I/O work on each end, before placement
    syscalls = t.syscalls_per_io[idx] + t.syscalls_per_chunk[idx] * np.ceil(S / t.chunk[idx])
    calls = syscalls * g("cpu.syscall_time") + t.zc_notifications_per_io[idx] * g("cpu.syscall_time")
    engines_desc = _reached_engine_mean(p, table, idx, engine_names, "descriptor_cpu_time")
    descriptor_bytes = np.where(t.dma_per_page[idx] > 0, g("workload.page_bytes"), t.dma_descriptor[idx])
    descriptors = resources.dma_descriptors(S, descriptor_bytes) * t.dma_copies[idx]
    user_wrs = np.where(is_rdma, t.rdma_wrs_per_io[idx] * g("cpu.rdma_wr_time"), 0.0)   # post + reap, user space
    request_time = np.where(smb, g("cpu.smb_request_time"), 0.0)
    stack_to_workers = t.workers_take_stack[idx] > 0
    calls_to_workers = t.workers_take_calls[idx] > 0
    # the server's send work: its own part, and on loopback the receive work its sends trigger
    server_send = np.where(server_inits, data.init + np.where(loop, data.peer + data.back, 0.0) - deferred, 0.0) \
        + np.where(in_copy & reading, csum_in_copy, 0.0)
    serving = (request_time + np.where(calls_to_workers, 0.0, calls)
               + t.handoffs_per_io[idx] * g("cpu.async_handoff_time")
               + serving_copies + descriptors * engines_desc + user_wrs + mm + soak_serving
               + np.where(stack_to_workers, 0.0, server_send))
    workers = (worker_copies + np.where(calls_to_workers, calls, 0.0) + soak_workers
               + np.where(stack_to_workers, server_send, 0.0))
    # receive work: through a NIC on the flows' cores; on loopback on the initiator's core (above/below),
    # and what ksoftirqd takes of a soft NIC's chain (flows, counted as neither end's)
    flows = np.where(loop, deferred - soak_serving - soak_workers,
                     np.where(server_inits, data.back, data.peer) + request.peer)
    host_softirq = np.where(loop, flows, 0.0)
    client_flows = np.where(loop, 0.0, np.where(server_inits, data.peer, data.back) + request.back)
    # the client's own passes: a CRC-32 of every byte it reads (a client that checks data), and its
    # buffer's registration (pinning its 4 KiB anonymous pages) when it registers per I/O
    client_check = np.where((g("workload.client_checks_data") > 0) & reading, S / g("cpu.crc32_rate"), 0.0)
    client_mm = np.where((g("workload.client_registers_per_io") > 0) & is_rdma,
                         g("cpu.mr_register_time") + pages4k * (g("cpu.pin_page_time") + g("cpu.pin_folio_time")), 0.0)
    client = (np.where(smb, g("cpu.smb_client_time"), 0.0) + client_check + client_mm
              + np.where(is_rdma & smb, 2.0 * g("cpu.rdma_wr_time"), 0.0)      # post the request SEND + a RECV
              + np.where(server_inits, 0.0, data.init) + request.init + counts.client_copy_and_calls
              + np.where(loop, request.peer + request.back + np.where(server_inits, 0.0, data.peer + data.back), 0.0))
    server_cpu = serving + workers + flows - host_softirq   # the server's threads (and NIC flows) per I/O

    # --- capacities of the CPU resources; other tenants' load (CPU-s/s spread over the host's cores)
    # leaves each core the rest of its time
    host_cores = g("cpu.cores") * sockets_used
    free = np.clip(1.0 - g("workload.foreign_load") / host_cores, 0.0, 1.0)
    n_serving = np.minimum(g("workload.io_cores"), conns)
    # each client host gives its own client_cores to its own connections
    n_client = np.where(client_on, clients * np.minimum(g("workload.client_cores"), g("workload.connections")), 0.0)
    # busy polling: the serving (and client) threads spin on their completion queues, always runnable;
    # where the host's runnable threads outnumber its free cores the scheduler shares them equally
    # a soft NIC on loopback: a connection's deferred chain stays on the CPU its poster sent from
    # (veth's netif_rx queues on the sending CPU, rxe schedules its tasklets where it runs), and
    # the posters sit on any core: the cores they occupy, as RSS's queues; pinned round robin to
    # k cores, min(connections, k) of them
    pinned = g("workload.serving_pinned_cores")
    placed = np.where(pinned > 0, np.minimum(np.minimum(conns, pinned), host_cores),
                      resources.occupied_queues(host_cores, conns))
    flow_queues = np.where(soft & loop, placed,
                           np.where(soft, np.minimum(conns, host_cores),
                                    resources.occupied_queues(np.minimum(g("nic.rss_queues"), host_cores), conns)))
    # on loopback those ksoftirqds run on the host's cores beside the spinning threads
    runnable = n_serving + np.where(workers > 0, g("workload.async_workers"), 0.0) \
        + np.where(loop, n_client + np.where(flows > 0, flow_queues, 0.0), 0.0)
    share = np.where(spin, np.minimum(free, host_cores * free / runnable), free)
    serving_cores = n_serving * share
    cap_serving = serving_cores * S / serving
    with np.errstate(divide="ignore", invalid="ignore"):
        cap_workers = np.where(workers > 0, g("workload.async_workers") * share * S / np.where(workers > 0, workers, 1),
                               np.inf)
        cap_flows = np.where(flows > 0, flow_queues * np.where(loop, share, free) * S / np.where(flows > 0, flows, 1.0),
                             np.inf)
        client_cpu = np.where(client_on, client + client_flows, 0.0)
        both = server_cpu + np.where(loop, client_cpu + host_softirq, 0.0)
        cap_all = host_cores * free * S / both
        # the client shares the host's cores (and their other tenants) on loopback
        client_threads = n_client * np.where(loop, share, 1.0)
        cap_client = np.where(client_on & (client > 0), client_threads * S / np.where(client > 0, client, 1.0), np.inf)
        client_queues = clients * np.where(
            soft, np.minimum(g("workload.connections"), g("workload.client_cores")),
            resources.occupied_queues(np.minimum(g("nic.rss_queues"), g("workload.client_cores")),
                                      g("workload.connections")))
        cap_client_flows = np.where(client_on & (client_flows > 0),
                                    client_queues * S / np.where(client_flows > 0, client_flows, 1.0), np.inf)

    # --- DRAM: the server host's (both ends' on loopback)
    nic_reads = np.where(through_nic, 1.0, 0.0)
    soft_bytes = np.where(soft, np.where(loop, 3.0, np.where(server_inits & reading, 1.0, 2.0)), 0.0)
    client_copies = np.where(loop & is_tcp, 1.0, 0.0)        # the receiver's copy out of the socket
    dram_bpb = resources.dram_bytes_per_payload_byte(t.cpu_copies[idx] + client_copies, t.dma_copies[idx],
                                                     g("cpu.nontemporal_copy"), g("workload.page_cache_hit"),
                                                     nic_reads) + soft_bytes
    cap_dram = g("memory.dram_bandwidth") * sockets_used / dram_bpb

    # --- the inter-socket link: the NIC's DMA and the copies that cross it
    # spread: each thread's buffers are local, the page cache and the NIC's buffers are remote for a
    # share `remote` of the I/Os; unpinned: every copy's source (1 B) and destination (write-allocate
    # read + write back: 2 B, 1 B non-temporal) is remote for that share
    per_copy_write = np.where(g("cpu.nontemporal_copy") > 0, 1.0, 2.0)
    copies_crossing = np.where(unpinned, t.cpu_copies[idx] * (1.0 + per_copy_write), t.cold_copies[idx])
    crossing = remote * (nic_reads + copies_crossing + 2.0 * t.dma_copies[idx])
    with np.errstate(divide="ignore"):
        cap_socket = np.where(crossing > 0, g("memory.inter_socket_bandwidth") / np.where(crossing > 0, crossing, 1.0),
                              np.inf)

    # --- PCIe: NICs needed for the links in use
    nics = np.ceil(links_used / g("nic.ports"))
    mss = resources.tcp_mss(g("link.mtu"), g("link.tcp_timestamps"))
    send_units = np.where(g("workload.tso") > 0, np.ceil(S / g("workload.gso_size")), np.ceil(S / mss))
    pcie_descriptors = np.where(is_tcp, send_units + 1, t.rdma_wrs_per_io[idx])
    pcie_bytes = resources.pcie_bytes_per_io(S, g("pcie.read_completion"), g("pcie.max_payload"),
                                             g("pcie.tlp_overhead"), pcie_descriptors, g("workload.operation_code"))
    pcie_per_nic = np.where(through_nic, resources.pcie_rate(g("pcie.generation"), g("pcie.lanes")) * S / pcie_bytes,
                            np.inf)
    cap_pcie = np.where(through_nic, nics * pcie_per_nic, np.inf)

    # --- DMA engines the path's API reaches (the workload uses at most dma_channels of them)
    dma_total, dma_one, dma_count = _dma_rates(p, table, idx, engine_names, S, descriptor_bytes)
    needs_dma = t.dma_copies[idx] > 0
    channels = np.minimum(dma_count, g("workload.dma_channels"))
    with np.errstate(divide="ignore", invalid="ignore"):
        used_total = np.where(dma_count > 0, dma_total * channels / np.where(dma_count > 0, dma_count, 1.0), 0.0)
        cap_dma = np.where(needs_dma, used_total / np.where(needs_dma, t.dma_copies[idx], 1), np.inf)

    # --- pipeline (Little's law): one I/O's descriptors go to one channel, or spread over the channels used
    spread = np.where(g("workload.dma_spread") > 0, np.maximum(channels, 1.0), 1.0)
    dma_seconds = np.where(needs_dma & (dma_one > 0),
                           t.dma_copies[idx] * S / np.where(dma_one > 0, dma_one * spread, 1)
                           + _reached_engine_mean(p, table, idx, engine_names, "completion_latency"), 0.0)
    serialise = np.where(through_nic, wire, 0.0)
    rate = np.where(through_nic, g("link.rate"), 1.0)
    rtt = np.where(no_net, 0.0, g("workload.rtt"))
    work = serving + workers + flows + np.where(client_on, client + client_flows, 0.0)
    latency = pipeline.io_latency_seconds(rtt, work, serialise, rate, dma_seconds)
    cap_pipe = pipeline.pipeline_capacity(
        pipeline.outstanding_ios(conns, g("workload.outstanding_per_connection")), S, latency)
    with np.errstate(divide="ignore"):
        window = np.where(is_tcp & (rtt > 0), conns * g("workload.tcp_window")
                          / np.where(rtt > 0, rtt, 1.0), np.inf)
    cap_pipe = np.minimum(cap_pipe, window)

    caps = np.stack([np.broadcast_to(c, shape).astype(float) for c in
                     (cap_links, cap_pcie, cap_dram, cap_serving, cap_workers, cap_all, cap_dma, cap_pipe,
                      cap_flows, cap_client, cap_client_flows, cap_socket)])
    order = np.argsort(caps, axis=0, kind="stable")
    binding, nxt = order[0], order[1]
    X = np.take_along_axis(caps, binding[None], 0)[0]
    nxt_cap = np.take_along_axis(caps, nxt[None], 0)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        headroom = np.where(X > 0, nxt_cap / X - 1.0, np.inf)
        dma_busy = np.where(needs_dma & (dma_one > 0), X * t.dma_copies[idx] / np.where(dma_one > 0, dma_one, 1), 0.0)
    b = lambda a: np.broadcast_to(a, shape).astype(float)  # noqa: E731
    copy_part = serving_copies + worker_copies + np.where(in_copy & reading, csum_in_copy, 0.0)
    # a spinning thread's CPU is its core share all the time, whatever it carries: per byte, share / X
    with np.errstate(divide="ignore", invalid="ignore"):
        per_x = np.where(X > 0, 1.0 / np.where(X > 0, X, 1.0), np.inf)
        server_cpu_byte = np.where(spin, n_serving * share * per_x + (workers + flows - host_softirq) / S,
                                   server_cpu / S)
        client_cpu_byte = np.where(spin & client_on, n_client * np.where(loop, share, 1.0) * per_x
                                   + client_flows / S, client_cpu / S)
    return Result(
        io_size=b(S), path_index=np.broadcast_to(idx, shape), throughput=X, capacity=caps,
        binding=binding, next_binding=nxt, headroom=headroom,
        cores_busy=b(np.where(X > 0, X * server_cpu_byte, 0.0)),
        serving_cores_busy=b(np.where(spin, n_serving * share, X * serving / S)),
        worker_cores_busy=b(X * workers / S), dma_engines_busy=b(dma_busy),
        cpu_seconds_per_byte=b(server_cpu_byte), serving_seconds_per_io=b(serving),
        worker_seconds_per_io=b(workers), dma_rate_per_engine=b(dma_one), wire_bytes_per_io=b(wire),
        dram_bytes_per_byte=b(dram_bpb), link_capacity_per_link=b(per_link), latency_seconds=b(latency),
        pcie_capacity_per_nic=b(pcie_per_nic), dma_engines_reachable=b(dma_count),
        flow_seconds_per_io=b(flows), host_softirq_seconds_per_io=b(host_softirq),
        client_seconds_per_io=b(np.where(client_on, client, 0.0)),
        client_flow_seconds_per_io=b(np.where(client_on, client_flows, 0.0)),
        client_cpu_seconds_per_byte=b(client_cpu_byte), copy_seconds_per_io=b(copy_part), mm_seconds_per_io=b(mm),
        checksum=np.broadcast_to(checksum, shape), flow_cores=b(np.where(flows > 0, flow_queues, 0.0)),
    )


@dataclass
class _Counts:
    client_copy_and_calls: np.ndarray    # the TCP client's recv calls and its copy out of the socket


def _chains(g, S, proto, is_tcp, soft, smb, reading, offload, own_pass, csum_pass, warm, filled, mr_read,
            server_wrs) -> tuple[_Chain, _Chain, _Counts]:
    """CPU seconds per I/O of the data chain and of the SMB2 request chain, per part.

    TCP, data (the sender initiates): send units x t_segment (+ a checksum pass without offload)
    at the sender; GRO units x t_receive (+ the receive checksum pass) at the receiver, which sends
    one ACK per GRO unit (per two segments without GRO); ACKs x t_ack back at the sender.
    Software RDMA (rdma_rxe), data (the server posts the WRITE, or the READ of a WRITE op): per
    end, one copy between the MR and the skbs, one ICRC (crc32) pass over the payload and
    t_packet per packet it sends or receives; t_wr per work request at the poster; ACKs: one per
    66 packets and per message (rxe_req.c). The response SEND (SMB2) is one more packet + ACK.
    Request (SMB2 only): the client's one-packet message, received by the server, acknowledged.
    A hardware RDMA NIC spends no host CPU on packets: its chain is zero (WRs count per path).
    """
    z = np.zeros(np.broadcast_shapes(np.shape(S), np.shape(proto)))
    # TCP
    mss = resources.tcp_mss(g("link.mtu"), g("link.tcp_timestamps"))
    segmented = g("workload.tso") > 0
    units = np.where(segmented, np.ceil(S / g("workload.gso_size")), np.ceil(S / mss))
    acks = np.where(segmented, units, np.ceil(S / (2.0 * mss)))
    tcp_init = units * g("cpu.tcp_segment_time") + np.where(own_pass, csum_pass, 0.0)
    tcp_peer = units * g("cpu.tcp_receive_time") + np.where(offload, 0.0, csum_pass)
    tcp_back = acks * g("cpu.tcp_ack_time")
    # software RDMA
    pmtu = resources.rdma_path_mtu(proto, g("link.mtu"))
    pkts = resources.rdma_packets(S, pmtu)
    resp = np.where(smb, 1.0, 0.0)                    # the SMB2 response SEND: one packet, one ACK
    acks_r = resources.rxe_acks(pkts) + resp
    t_pkt, t_wr = g("nic.soft_packet_time"), g("nic.soft_wr_time")
    with np.errstate(divide="ignore"):
        crc = np.where(soft, S / np.where(soft, g("nic.soft_crc_rate"), 1.0), 0.0)
    # the sender copies from its MR (mr_read: a buffer it filled itself, the page cache, another
    # core's buffer); the receiver into its MR from skbs just built on this core (on loopback) or
    # written by the NIC (through one)
    rx_copy = np.where(g("link.medium_code") == 1, warm, filled)
    write_init = server_wrs * t_wr + (pkts + resp) * t_pkt + mr_read + crc
    write_peer = (pkts + resp) * t_pkt + crc + rx_copy + acks_r * t_pkt
    write_back = acks_r * t_pkt
    # a WRITE op: the server's RDMA READ (one request packet) is answered by read responses that
    # carry the data (no ACKs: the responses are them); the per-byte work swaps ends
    read_init = server_wrs * t_wr + (1.0 + resp) * t_pkt
    read_peer = (1.0 + pkts) * t_pkt + mr_read + crc
    read_back = (pkts + resp) * t_pkt + crc + rx_copy + resp * t_pkt
    soft_init = np.where(reading, write_init, read_init)
    soft_peer = np.where(reading, write_peer, read_peer)
    soft_back = np.where(reading, write_back, read_back)
    data = _Chain(init=np.where(is_tcp, tcp_init, np.where(soft, soft_init, z)),
                  peer=np.where(is_tcp, tcp_peer, np.where(soft, soft_peer, z)),
                  back=np.where(is_tcp, tcp_back, np.where(soft, soft_back, z)))
    # the request: one small message from the client (SMB2 only)
    req_tcp = (g("cpu.syscall_time") + g("cpu.tcp_segment_time"), g("cpu.tcp_receive_time"), g("cpu.tcp_ack_time"))
    req_soft = (t_wr + t_pkt, 2.0 * t_pkt, t_pkt)
    request = _Chain(*(np.where(smb, np.where(is_tcp, a, np.where(soft, b_, z)), z) for a, b_ in zip(req_tcp, req_soft)))
    # the TCP client: one recv call and one copy out of skbs another core (the NIC, the sender) wrote;
    # on a WRITE it sends: one send call and a copy from its own buffer
    client_tcp = g("cpu.syscall_time") + np.where(reading, filled, warm)
    return data, request, _Counts(client_copy_and_calls=np.where(is_tcp, client_tcp, z))


def _dma_rates(p, table: DemandTable, idx, engine_names, S, descriptor_bytes):
    """(bytes/s of all reachable engines together, bytes/s of one reachable engine, reachable engines) per point."""
    total = 0.0
    one = 0.0
    count = 0.0
    for e, name in enumerate(engine_names):
        reach = table.dma_reach[idx, e] if table.dma_reach.shape[1] else False
        rate = resources.dma_io_rate(S, descriptor_bytes, np.asarray(p[f"dma.{name}.rate"], dtype=float),
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
