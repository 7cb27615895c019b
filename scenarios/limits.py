"""Physical ranges of every figure a scenario or platform holds, and where each bound comes from.

A value outside its range is not a bold what-if but a typo or a unit slip ("10B" for an MTU,
"5ms" for "5us"); the model would run on it without complaint, so the files refuse it with the
range in the message. The bounds are wide on purpose: they admit every machine that exists or
is announced, and nothing that cannot exist. Each bound's source is given beside it.
"""

from __future__ import annotations

from scenarios.fields import Limit, count, one_of, span
from scenarios.units import parse_freq, parse_rate, parse_size, parse_time

# ---- CPU ------------------------------------------------------------------------------------
# One kernel instance manages at most 8192 CPUs on x86-64 (Linux arch/x86/Kconfig NR_CPUS_RANGE_END
# with MAXSMP); the largest servers today have 2 x 288 cores (Xeon 6 6900E).
CORES = count(1, 8192, "Linux x86-64 manages at most 8192 CPUs (NR_CPUS with MAXSMP)")
# Base clocks of server CPUs are 1-4 GHz; the overclocking record is ~9.1 GHz (liquid helium, 2024).
CLOCK = span("0.1GHz", "10GHz", parse_freq, "no CPU runs above ~9 GHz even on liquid helium")
# One core stores at most 2 x 64 B per cycle (Golden Cove, Zen 5 with AVX-512): 768 GB/s at 6 GHz.
# The floor is an emulated core (qemu TCG copies at a few hundred MB/s); below it is a unit slip.
CORE_COPY_RATE = span("10MB/s", "1TB/s", parse_rate,
                      "a core stores at most 2 x 64 B per cycle, 768 GB/s at 6 GHz")
# Private cache a copy stays inside: 1-2 MiB L2 on x86 servers, 36 MiB on IBM Telum II; a fitted
# knee can reach into a large L3 (96 MiB per CCD with AMD 3D V-Cache).
CACHE_PER_CORE = span("1KiB", "1GiB", parse_size, "no core has more than ~100 MiB of cache to itself")
# CPU time of one step of an I/O (a system call, an SMB request, posting a work request, a TCP
# segment, a hand-off to a worker, a DMA descriptor): 10 ns is ~30 cycles, below any kernel entry,
# doorbell or wake-up; above 1 ms a core would manage under 1000 of them a second: a ms/us slip.
STEP_TIME = span("10ns", "1ms", parse_time, "one per-I/O step costs 10 ns (30 cycles) to 1 ms of CPU")
# An SMB2 request's handling at either end (parse, credits, build the response or the request, its
# WRs): ~5 us in a kernel server, 0.6-1.7 ms per end in rdmarig's Python flows under qemu TCG
# (measured 2026-12-01, the proto.smbd part, slower as the shared host got busier); 100 ms would be
# a ms/us slip.
SMB_REQUEST_TIME = span("10ns", "100ms", parse_time, "one SMB2 request costs 10 ns to 100 ms of CPU")

# Sockets one Linux image spans on x86 servers: 1, 2, 4 or 8 (Intel Xeon Platinum scales to 8 sockets).
SOCKETS = count(1, 8, "x86 servers have 1, 2, 4 or 8 sockets (Xeon Platinum scales to 8)")
# Memory-management steps per page (a fault, a pin, an unmap, a TLB shootdown IPI round, an MR
# registration call): 1 ns is ~3 cycles, below any page-table or page-struct access; above 10 ms a
# core would manage under 100 of them a second.
MM_STEP_TIME = span("1ns", "10ms", parse_time, "one page-table / page-struct step costs 1 ns (3 cycles) to 10 ms")
# CPU time per page of a kernel copy, or per packet / work request of a software RDMA NIC: 0 when
# none is spent (a figure that costs nothing), else below 1 ms.
ZERO_OK_STEP_TIME = span("0s", "1ms", parse_time, "one per-page or per-packet step costs 0 to 1 ms of CPU")
# The softirq a task runs when it leaves a bottom half: Linux ends __do_softirq after MAX_SOFTIRQ_TIME
# (2 ms, kernel/softirq.c; a jiffy at least, 1-10 ms with HZ 1000..100) and net_rx_action after
# netdev_budget_usecs (default 2000 us): 0 would defer every softirq, above 100 ms a task would stall.
SOFTIRQ_BUDGET = span("0s", "100ms", parse_time, "a bottom-half exit runs 0 to 100 ms of softirq before ksoftirqd")
# A sleeping poster runs its WRs' soft-RoCE chain inline until the kernel wakes ksoftirqd (a tick
# inside a softirq run, a task waiting for the CPU): measured 3-40 ms per WR in the TCG guest; 0
# hands everything over at once, and past a second no task would ever give the chain away.
SOFT_INLINE_TIME = span("0s", "1s", parse_time, "a sleeping poster runs 0 s to 1 s of its chain before ksoftirqd")
# the pending chain's softirq a kernel copy runs at its interrupt exits, per second of its own copying:
# 0 (none pending) .. a few (the copy's thread doing little else); measured 0-1.2 per size beside rxe chains
# under TCG (copy.pread, 2026-12-01)
SOFT_COPY_ABSORPTION = Limit(0.0, 10.0, "0..10", "a copy's thread runs 0 to a few seconds of pending chain per second of copying")

# ---- memory ---------------------------------------------------------------------------------
# 12 channels of MRDIMM-8800 give 845 GB/s per socket; CPUs with HBM3 reach 5.3 TB/s (AMD MI300A).
DRAM_RATE = span("100MB/s", "10TB/s", parse_rate, "the fastest CPU memory (HBM3, MI300A) moves 5.3 TB/s")
# Inter-socket links: 4 x UPI 2.0 (16 GT/s) on Sapphire Rapids carry ~128 GB/s a direction, 4 x16
# xGMI3 on EPYC 9004 ~256 GB/s; 10 MB/s to 10 TB/s bounds them all.
SOCKET_LINK_RATE = span("10MB/s", "10TB/s", parse_rate, "UPI / Infinity Fabric links carry 10s-100s of GB/s")

# ---- NIC and link -----------------------------------------------------------------------------
NIC_PORTS = count(1, 16, "NIC cards have 1 to 4 ports, a few 8; 16 bounds them all")
# Receive queues (RSS channels) a NIC hashes flows over: one per core at most in Linux drivers;
# mlx5 offers up to 128+ channels, the RSS indirection table has 256+ entries.
RSS_QUEUES = count(1, 8192, "a NIC has at most one receive queue per core (Linux manages at most 8192 CPUs)")
# 10BASE-T at the bottom; 1.6 Tb/s Ethernet (IEEE 802.3dj) and 800 Gb/s InfiniBand XDR at the top.
PORT_RATE = span("10Mbit/s", "1.6Tbit/s", parse_rate, "Ethernet tops out at 1.6 Tb/s per port (IEEE 802.3dj)")
# Links are NIC ports in use: a 2-socket server has 160 PCIe Gen5 lanes, 10 x16 NICs of 2 ports.
LINKS = count(1, 64, "a server has at most ~20 NIC ports (160 PCIe lanes / x16 x 2 ports)")
# Ethernet: every IPv4 host must take 576 B datagrams (RFC 791); IEEE 802.3 defines 1500 B and
# data-centre switches stop jumbo frames at 9216 B (Cisco Nexus, Arista: system jumbomtu 9216).
ETHERNET_MTU = span("576B", "9216B", parse_size, "IPv4 minimum (RFC 791) to the 9216 B jumbo frames switches carry")
# Linux lo: drivers/net/loopback.c sets mtu = 64 * 1024; IPv4 datagrams end at 65535 B anyway.
LOOPBACK_MTU = span("576B", "65536B", parse_size, "Linux lo's MTU is 64 KiB (drivers/net/loopback.c)")
# InfiniBand path MTUs are an enumeration (IBTA spec vol. 1: 256, 512, 1024, 2048, 4096 B).
IB_MTU = one_of(("256B", "512B", "1024B", "2048B", "4096B"), parse_size, "the IB MTUs of the IBTA spec")
# TSO/GSO units: 64 KiB classically, up to 512 KiB with BIG TCP (Linux 5.19+, IPv6; 6.3+ IPv4).
GSO_SIZE = span("512B", "512KiB", parse_size, "GSO units end at 64 KiB, 512 KiB with BIG TCP (Linux 5.19+)")
# Bytes a TCP connection keeps in flight: the socket buffers (net.core.wmem_max / tcp_wmem,
# tcp_rmem); 2 GiB is the largest window TCP window scaling allows (RFC 7323: 2^30 B).
TCP_WINDOW = span("1KiB", "1GiB", parse_size, "TCP window scaling allows at most 2^30 B in flight (RFC 7323)")
# Page / folio sizes: 4 KiB base pages up to 1 GiB huge pages (x86-64 PUD mappings).
PAGE_SIZE = one_of(("4KiB", "8KiB", "16KiB", "32KiB", "64KiB", "128KiB", "256KiB", "512KiB", "1MiB", "2MiB",
                    "1GiB"), parse_size, "page / folio sizes: 4 KiB base pages to 2 MiB (THP) and 1 GiB huge pages")

# ---- PCIe (PCI Express Base Specification) ------------------------------------------------------
PCIE_GENERATIONS = count(1, 5, "generations 1..5 are modelled (6.0 changes to FLIT encoding)")
# Link widths x1, x2, x4, x8, x16, x32 (x12 is in the early specs, but no device implements it).
PCIE_LANES = count(1, 32, "the PCIe link widths", allowed=(1, 2, 4, 8, 16, 32))
# Device Control register, Max_Payload_Size: 128, 256, 512, 1024, 2048 or 4096 B.
MAX_PAYLOAD = one_of(("128B", "256B", "512B", "1024B", "2048B", "4096B"), parse_size,
                     "Max_Payload_Size of the PCIe spec")
# Read completions split at the read completion boundary (64 or 128 B) and carry at most MPS.
READ_COMPLETION = one_of(("64B", "128B", "256B", "512B", "1024B", "2048B", "4096B"), parse_size,
                         "the 64/128 B read completion boundary up to Max_Payload_Size")
# A TLP has at least a 3-DW (12 B) header; 4 B framing + 2 B sequence + 16 B header + 4 B ECRC +
# 4 B LCRC = 30 B at most, 64 B leaves room for DLLPs spread over the TLPs.
TLP_OVERHEAD = span("12B", "64B", parse_size, "a 12 B header to 30 B of framing, header, ECRC and LCRC")

# ---- DMA engines ------------------------------------------------------------------------------
# Sapphire Rapids: up to 4 DSA per socket; Xeon I/OAT: 16 channels per socket.
DMA_ENGINES = count(0, 256, "4 DSA or 16 I/OAT channels per socket")
DMA_RATE = span("10MB/s", "1TB/s", parse_rate, "one DSA device moves ~30 GB/s; no engine beats memory")
DESCRIPTOR_TIME = span("0s", "1ms", parse_time, "an engine spends 0 (overlapped) to 1 ms per descriptor")
COMPLETION_LATENCY = span("10ns", "10ms", parse_time, "a completion takes 10 ns to 10 ms to be seen")

# ---- workload ---------------------------------------------------------------------------------
# One client address reaches one server port over at most 65535 source ports (TCP/IP).
CONNECTIONS = count(1, 65535, "one client address has at most 65535 ports to a server port")
# Cores the client gives to I/O; 0: the client is not modelled (a client that never limits).
CLIENT_CORES = count(0, 8192, "0 (client not modelled) up to the 8192 CPUs Linux manages")
# Cores the serving threads are pinned to, one connection's thread per core round robin; 0: unpinned.
PINNED_CORES = count(0, 8192, "0 (the scheduler places the serving threads) up to the 8192 CPUs Linux manages")
# Client hosts one server serves at once (incast): every client holds at least one connection,
# and a server port accepts at most 65535 connections per client address.
CLIENTS = count(1, 65535, "1 client host up to 65535, the bound connections have")
# CPU other tenants take while the workload runs (CPU-seconds per second over the host): 0 up to
# every core Linux manages.
FOREIGN_LOAD = span("0s", "8192s", parse_time, "other tenants take 0 CPU-s/s up to every core the host has")
# DMA channels one workload spreads its descriptors over: up to every engine a platform has.
DMA_CHANNELS = count(1, 256, "4 DSA or 16 I/OAT channels per socket; 256 bounds every platform")
# Credits are 16-bit fields: MS-SMB2 CreditRequest/CreditResponse, MS-SMBD CreditsRequested/Granted.
CREDITS = count(1, 65535, "credits are 16-bit fields in MS-SMB2 and MS-SMBD")
# The fastest RDMA round trips are ~1-2 us (back-to-back NICs); a geostationary satellite hop is ~0.6 s.
RTT = span("100ns", "1s", parse_time, "no round trip beats ~1 us through two NICs; a satellite hop is 0.6 s")
IO_SIZE = span("1B", "1GiB", parse_size, "an SMB2 READ/WRITE moves at most 8 MiB; 1 GiB bounds every copy path")
# The payload a scenario (or --target) may aim for: no server moves more than its memory (see
# DRAM_RATE; 8 x 800 Gbit/s of links is 0.8 TB/s); below 1 MB/s every count in the answer is 0 or 1.
TARGET_RATE = span("1MB/s", "10TB/s", parse_rate, "no server moves more than its memory, ~10 TB/s")

# ---- copy-path rows -------------------------------------------------------------------------------
# Per-I/O counts: 1 GiB in 4 KiB pages is 262,144 pages; a million steps per I/O is no path.
PER_IO_COUNT = Limit(0.0, 1e6, "0..1000000", "1 GiB in 4 KiB pages is 262,144 pages")
# Passes over an I/O's pages (map + fault + unmap, pin + unpin, fresh anonymous buffers): a path
# makes a few at most; above 100 per I/O it is a typo.
PAGE_PASSES = Limit(0.0, 100.0, "0..100", "a path maps, pins or allocates an I/O's pages a few times at most")
