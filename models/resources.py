"""Capacities of the resources a file server uses, as vectorised numpy functions.

Every function takes arrays (or scalars) in SI units and broadcasts. The constants are protocol
facts, each with its origin; the hardware figures come from the platform profile.
"""

from __future__ import annotations

import numpy as np

# --- Ethernet / RoCEv2 / InfiniBand / TCP framing, bytes (IEEE 802.3, RFC 791/768/793/7323,
# --- InfiniBand Architecture Specification vol. 1 + annex A17 RoCEv2) -----------------------
ETH_PREAMBLE_IFG = 8 + 12      # preamble + start-of-frame delimiter, inter-frame gap
ETH_HEADER_FCS = 14 + 4        # MAC header + frame check sequence
IPV4 = 20
UDP = 8
BTH = 12                       # InfiniBand base transport header
RETH = 16                      # RDMA extended transport header: first packet of an RDMA WRITE
ICRC = 4                       # invariant CRC
IB_LRH_VCRC = 8 + 2            # InfiniBand local route header + variant CRC (native IB)
TCP = 20
TCP_TIMESTAMPS = 12            # RFC 7323 timestamp option, padded
ROCE_PACKET_OVERHEAD = ETH_PREAMBLE_IFG + ETH_HEADER_FCS + IPV4 + UDP + BTH + ICRC   # 82 B
IB_PACKET_OVERHEAD = IB_LRH_VCRC + BTH + ICRC                                      # 26 B
# ib_core reserves GRH 40 + UDP 8 + BTH 12 + XRC 4 + AtomicETH 28 + ICRC 4 = 96 B of the Ethernet
# MTU before picking the largest IB MTU (256..4096) that fits (include/rdma/ib_addr.h iboe_get_mtu).
IBOE_HEADER_RESERVE = 40 + UDP + BTH + 4 + 28 + ICRC
IB_MTUS = np.array([256, 512, 1024, 2048, 4096], dtype=float)

# --- SMB headers per I/O ----------------------------------------------------------------------
SMB2_HEADER = 64               # [MS-SMB2] 2.2.1 SYNC header
SMB2_READ_RESPONSE = 16        # [MS-SMB2] 2.2.20 READ response fixed part (data follows)
SMBD_DATA_HEADER = 24          # [MS-SMBD] 2.2.3 data transfer message, data offset 0x18
NETBIOS_SESSION = 4            # [MS-SMB2] 2.1 Direct TCP transport 4-byte length prefix

# --- PCIe (PCI Express Base Specification: transfer rate per lane, line encoding) ------------
PCIE_GTS = {1: 2.5e9, 2: 5e9, 3: 8e9, 4: 16e9, 5: 32e9}
PCIE_ENCODING = {1: 8 / 10, 2: 8 / 10, 3: 128 / 130, 4: 128 / 130, 5: 128 / 130}
NIC_DESCRIPTOR = 64            # bytes the NIC fetches per work request (mlx5 WQE basic block, MLX5_SEND_WQE_BB)


def roce_path_mtu(eth_mtu):
    """RoCE path MTU from the Ethernet MTU: largest IB MTU <= MTU - 96 B (1500 -> 1024, 9000 -> 4096)."""
    usable = np.asarray(eth_mtu, dtype=float) - IBOE_HEADER_RESERVE
    idx = np.searchsorted(IB_MTUS, usable, side="right") - 1
    return IB_MTUS[np.clip(idx, 0, len(IB_MTUS) - 1)]


def rdma_message_wire_bytes(payload, path_mtu, packet_overhead, first_packet_extra=0.0):
    """Bytes on the wire for one RDMA message of `payload` bytes (at least one packet)."""
    packets = np.maximum(1.0, np.ceil(np.asarray(payload, dtype=float) / path_mtu))
    return payload + packets * packet_overhead + first_packet_extra


def tcp_mss(eth_mtu, timestamps):
    return eth_mtu - IPV4 - TCP - np.where(np.asarray(timestamps) > 0, TCP_TIMESTAMPS, 0)


def tcp_stream_wire_bytes(stream_bytes, eth_mtu, timestamps):
    """Bytes on the wire to carry `stream_bytes` of TCP payload in full-size segments."""
    mss = tcp_mss(eth_mtu, timestamps)
    segments = np.maximum(1.0, np.ceil(stream_bytes / mss))
    per_segment = ETH_PREAMBLE_IFG + ETH_HEADER_FCS + IPV4 + TCP + np.where(np.asarray(timestamps) > 0, TCP_TIMESTAMPS, 0)
    return stream_bytes + segments * per_segment


def rdma_path_mtu(protocol, mtu):
    """The RDMA path MTU: the IB MTU itself on InfiniBand, else from the Ethernet MTU (roce_path_mtu)."""
    return np.where(np.asarray(protocol) == 1, mtu, roce_path_mtu(mtu))


def smb_wire_bytes_per_io(io_size, protocol, eth_mtu, timestamps, smb=1):
    """Bytes the server puts on the wire for one SMB2 READ of `io_size` bytes.

    protocol: 0 = roce-v2, 1 = infiniband, 2 = tcp, 3 = none (no network: 0 B) (arrays allowed).
    SMB Direct: the data goes as one RDMA WRITE (RETH on its first packet), the response as one
    SEND carrying the SMB Direct data header + SMB2 header + READ response.
    TCP: NetBIOS length + SMB2 header + READ response + data in one stream.
    smb = 0 (raw data, no SMB2): the RDMA WRITE alone, or the data alone in the TCP stream.
    """
    io_size = np.asarray(io_size, dtype=float)
    protocol = np.asarray(protocol)
    has_smb = np.asarray(smb) > 0
    response = SMBD_DATA_HEADER + SMB2_HEADER + SMB2_READ_RESPONSE
    ib_mtu = rdma_path_mtu(protocol, eth_mtu)
    overhead = np.where(protocol == 1, IB_PACKET_OVERHEAD, ROCE_PACKET_OVERHEAD)
    rdma = (rdma_message_wire_bytes(io_size, ib_mtu, overhead, RETH)
            + np.where(has_smb, rdma_message_wire_bytes(response, ib_mtu, overhead), 0.0))
    headers = np.where(has_smb, NETBIOS_SESSION + SMB2_HEADER + SMB2_READ_RESPONSE, 0.0)
    tcp = tcp_stream_wire_bytes(io_size + headers, eth_mtu, timestamps)
    return np.where(protocol == 3, 0.0, np.where(protocol == 2, tcp, rdma))


# --- software RDMA (rdma_rxe, Linux 6.1) --------------------------------------------------------
# The requester asks for an ACK on the last packet of a message and after every
# RXE_MAX_PKT_PER_ACK + 1 packets (rxe_req.c init_req_packet: `noack_pkts++ > RXE_MAX_PKT_PER_ACK`,
# rxe_param.h: RXE_MAX_PKT_PER_ACK = 64); the responder answers each such packet with one ACK.
RXE_PACKETS_PER_ACK = 64 + 2


def rdma_packets(payload, path_mtu):
    """Packets of one RDMA message: ceil(payload / path MTU), at least one."""
    return np.maximum(1.0, np.ceil(np.asarray(payload, dtype=float) / path_mtu))


def rxe_acks(packets):
    """ACKs rxe's responder sends for one message of `packets` packets: ceil(packets / 66)."""
    return np.ceil(np.asarray(packets, dtype=float) / RXE_PACKETS_PER_ACK)


# --- receive-side scaling ----------------------------------------------------------------------

def occupied_queues(queues, flows):
    """Receive queues that carry at least one of `flows` connections when RSS hashes each to one of
    `queues` at random: the expected count Q (1 - (1 - 1/Q)^N). One flow uses one queue; many flows
    on few queues collide; the queues (and the cores their softirq runs on) are what flows add."""
    q = np.maximum(np.asarray(queues, dtype=float), 1.0)
    return q * (1.0 - (1.0 - 1.0 / q) ** np.asarray(flows, dtype=float))


# --- NUMA ---------------------------------------------------------------------------------------

def remote_fraction(placement, sockets):
    """Share of memory a serving thread touches on another socket than its own (or than the NIC's).
    placement: 0 local (threads, memory and NIC on one socket), 1 spread, 2 unpinned: (s - 1) / s."""
    s = np.maximum(np.asarray(sockets, dtype=float), 1.0)
    return np.where(np.asarray(placement) > 0, (s - 1.0) / s, 0.0)


def pcie_rate(generation, lanes):
    """Bytes/s one direction of a PCIe link carries after line encoding (before TLP overhead)."""
    gen = np.asarray(generation).astype(int)
    gts = np.vectorize(PCIE_GTS.get, otypes=[float])(gen)
    enc = np.vectorize(PCIE_ENCODING.get, otypes=[float])(gen)
    return gts * enc * lanes / 8.0


MWR64_EXTRA = 4                # a 64-bit memory write header is 4 B longer than a completion's (pcie-model)


def pcie_bytes_per_io(io_size, read_completion, max_payload, tlp_overhead, descriptors, nic_writes=0):
    """PCIe bytes to move one I/O's payload across the NIC's host interface, plus descriptor fetches.

    Sending (SMB2 READ, nic_writes=0): the NIC reads host memory and the root returns the data in
    completions of min(read_completion, MPS) bytes. Receiving (SMB2 WRITE, nic_writes=1): the NIC
    writes host memory in posted writes of MPS bytes with a 64-bit address header.
    """
    writes = np.asarray(nic_writes) > 0
    chunk = np.where(writes, max_payload, np.minimum(read_completion, max_payload))
    overhead = np.where(writes, tlp_overhead + MWR64_EXTRA, tlp_overhead)
    return io_size + np.ceil(io_size / chunk) * overhead + descriptors * (NIC_DESCRIPTOR + tlp_overhead)


def copy_seconds(nbytes, rate_cache, rate_dram, cache_bytes, cold_source):
    """CPU seconds for one core to copy `nbytes`.

    A cold source (page cache not in any CPU cache) copies at the DRAM rate. A reused buffer
    copies its first `cache_bytes` at the cache rate and the rest at the DRAM rate, so the rate
    falls smoothly from the cache regime to the DRAM regime as the buffer outgrows the cache.
    """
    nbytes = np.asarray(nbytes, dtype=float)
    cached = np.where(cold_source, 0.0, np.minimum(nbytes, cache_bytes))
    return cached / rate_cache + (nbytes - cached) / rate_dram


def dram_bytes_per_payload_byte(cpu_copies, dma_copies, nontemporal, page_cache_hit, nic_reads=1.0):
    """DRAM traffic per payload byte: a NIC's DMA reads the payload once (nic_reads: 1x; 0 where no
    NIC moves it: loopback, memory workloads), every CPU copy reads and writes it (2x, 3x when stores
    are not non-temporal: the write-allocate read), every DMA-engine copy 2x, and filling the page
    cache from storage 1x when the data is not cached."""
    per_cpu_copy = np.where(np.asarray(nontemporal) > 0, 2.0, 3.0)
    fill = np.where(np.asarray(page_cache_hit) > 0, 0.0, 1.0)
    return nic_reads + cpu_copies * per_cpu_copy + 2.0 * dma_copies + fill


def dma_engine_rate(descriptor_bytes, rate, descriptor_time):
    """Bytes/s one DMA engine moves when each descriptor carries `descriptor_bytes`."""
    return descriptor_bytes / (descriptor_bytes / rate + descriptor_time)


def dma_descriptors(io_size, descriptor_bytes):
    """Descriptors built for one I/O: ceil(S / D); an I/O smaller than D is one descriptor of S bytes."""
    return np.maximum(1.0, np.ceil(np.asarray(io_size, dtype=float) / descriptor_bytes))


def dma_io_rate(io_size, descriptor_bytes, rate, descriptor_time):
    """Bytes/s one DMA engine moves for I/Os of `io_size` split into descriptors of at most
    `descriptor_bytes`: S / (S / rate + ceil(S / D) x t_descriptor). The descriptors actually built
    carry min(S, D) bytes, so a 4 KiB I/O on a 2 MiB-descriptor path gets the 4 KiB rate."""
    S = np.asarray(io_size, dtype=float)
    return S / (S / rate + dma_descriptors(S, descriptor_bytes) * descriptor_time)


def kept_inline(chain_s: np.ndarray, inline_s: np.ndarray) -> np.ndarray:
    """Of a soft NIC's chain of `chain_s` seconds raised by one post, what the posting task runs
    itself when the kernel hands the rest to ksoftirqd at a constant rate, one hand-over per
    `inline_s` of chain run inline (a memoryless hand-over: a tick landing inside a softirq run, a
    task waiting for the CPU): inline_s (1 - exp(-chain_s / inline_s)); all of a short chain, at
    most `inline_s` on average of a long one; nothing with inline_s = 0."""
    chain = np.maximum(np.asarray(chain_s, dtype=float), 0.0)
    tau = np.asarray(inline_s, dtype=float)
    safe = np.where(tau > 0, tau, 1.0)
    return np.where(tau > 0, -safe * np.expm1(-chain / safe), 0.0)


def inline_time_of(kept_s: float, chain_s: float) -> float | None:
    """The `inline_s` of kept_inline that keeps `kept_s` of `chain_s` (None: nothing was handed over,
    only a lower bound; or the figures are not a chain and its kept part)."""
    if not (0 < kept_s < chain_s) or kept_s >= chain_s * (1 - 1e-3):
        return None
    lo, hi = kept_s, chain_s * chain_s / (2 * (chain_s - kept_s)) + chain_s   # g(lo) < kept <= g(hi)
    for _ in range(200):
        mid = (lo * hi) ** 0.5
        if float(kept_inline(chain_s, mid)) < kept_s:
            lo = mid
        else:
            hi = mid
    return (lo * hi) ** 0.5
