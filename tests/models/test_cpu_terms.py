"""The model's CPU-side terms (issue 10) and its software-RDMA / loopback terms (issue 9), each
against its equation written out here by hand (never the model's functions) and fed the figures of
the profile the test loads, and the shapes the terms exist for."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models import report
from models.bottleneck import RESOURCES
from models.sweep import evaluate_grid, evaluate_scenario
from scenarios import schema

MiB = 1024 * 1024
KiB = 1024


def _write(tmp_path: Path, name: str, text: str) -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


SOFT_PLATFORM = '''name = "soft-xeon"
base = "xeon-8470-cx7"
[nic]
rdma = "software"
rdma_source = "test: soft-RoCE on this host"
soft_crc_rate = "2GB/s"
soft_crc_rate_source = "test figure"
soft_packet_time = "2us"
soft_packet_time_source = "test figure"
soft_wr_time = "5us"
soft_wr_time_source = "test figure"
soft_inline_time = "3ms"
soft_inline_time_source = "test figure"
soft_copy_absorption = 0
soft_copy_absorption_source = "test figure (the copy's absorption apart: its own test)"
'''


def _scenario(tmp_path: Path, body: str, platform: str = "xeon-8470-cx7", name: str = "t.toml") -> schema.Scenario:
    return schema.load_scenario(_write(tmp_path, name, f'name = "t"\nplatform = "{platform}"\n' + body))


def _at(ev, path: str, size: float, **axes) -> int:
    for i, r in enumerate(report.rows(ev)):
        if r["copy_path"] == path and r["io_size_bytes"] == size and all(
                r[schema.unit_key(k)] == v for k, v in axes.items()):
            return i
    raise AssertionError(f"no row {path} {size} {axes}")


def cap(ev, i: int, resource: str) -> float:
    return float(ev.result.capacity[RESOURCES.index(resource)].flat[i])


# --- 1. DMA: the descriptor actually built (issue 10, wrong today 1) ---------------------------------

def test_dma_rate_uses_the_descriptor_actually_built(tmp_path):
    # a 4 KiB I/O on a path of 2 MiB descriptors is one 4 KiB descriptor: 4096 / (4096 / rate + t_d),
    # not 2 MiB's rate; a 3 MiB I/O is two descriptors: 3 MiB / (3 MiB / rate + 2 t_d)
    s = _scenario(tmp_path, '''copy_paths = ["big-desc"]
[network]
links = "2x200Gbit/s"
protocol = "roce-v2"
[workload]
transport = "smbdirect"
connections = 4
outstanding_per_connection = 32
io_cores = 4
rtt = "10us"
[sweep]
io_sizes = ["4KiB", "3MiB"]
[[copy_path]]
name = "big-desc"
transports = ["smbdirect"]
copies = [{who = "dma", source = "page-cache"}]
dma_api = "dma_request_channel"
dma_descriptor = "2MiB"
syscalls_per_io = 1
rdma_wrs_per_io = 2
''', platform="epyc-9654-cx7")
    (pt,) = s.platform.dma
    ev = evaluate_scenario(s)
    rate = ev.result.dma_rate_per_engine
    assert rate[0] == pytest.approx(4096 / (4096 / pt.rate + pt.descriptor_time))
    assert rate[1] == pytest.approx(3 * MiB / (3 * MiB / pt.rate + 2 * pt.descriptor_time))
    assert rate[0] < 2 * MiB / (2 * MiB / pt.rate + pt.descriptor_time)


# --- 2./memory workloads: no network, page copies by CPU threads or DMA channels ------------------------

MEMORY = '''copy_paths = ["cpu-threads", "dma-channels"]
[workload]
transport = "memory"
operation = "read"
connections = 1
outstanding_per_connection = 4
io_cores = 1
page_cache_hit = true
dma_channels = 1
[sweep]
io_sizes = ["64MiB"]
"workload.page_bytes" = ["4KiB", "2MiB"]
'''

# a profile whose DMA engine costs 1 us per descriptor of engine time and 0.5 us of CPU to submit and
# reap one: at 4 KiB pages both dominate the page, at 2 MiB they vanish
DMA_PROFILE = '''name = "dma-costs"
base = "xeon-8470-cx7"
[[dma]]
name = "engine"
count = 1
count_source = "test"
rate = "30GB/s"
rate_source = "test"
descriptor_time = "1us"
descriptor_time_source = "test: 1 us of engine time per descriptor"
descriptor_cpu_time = "0.5us"
descriptor_cpu_time_source = "test: 0.5 us of CPU per descriptor"
completion_latency = "2us"
completion_latency_source = "test"
apis = ["dma_request_channel"]
apis_source = "test"
'''


def test_memory_workload_has_no_network_and_no_smb(tmp_path):
    s = _scenario(tmp_path, MEMORY)
    ev = evaluate_scenario(s)
    r, c = ev.result, s.platform.cpu
    S = 64 * MiB
    i = _at(ev, "cpu-threads", S, **{"workload.page_bytes": 4096.0})
    # no SMB request, no system call: one cold copy per byte + one step per 4 KiB page
    assert r.serving_seconds_per_io.flat[i] == pytest.approx(S / c.copy_rate_dram + S / 4096 * c.copy_page_time)
    assert np.isinf(cap(ev, i, "links")) and np.isinf(cap(ev, i, "pcie"))
    # DRAM: no NIC reads the payload, the copy reads it and writes it (3x with write-allocate)
    assert r.dram_bytes_per_byte.flat[i] == (2 if c.nontemporal_copy else 3)
    assert r.wire_bytes_per_io.flat[i] == 0
    assert "memory-to-memory" in report.title(ev)


def test_dma_loses_to_the_cpu_at_4k_pages_and_wins_at_2m(tmp_path):
    plat = _write(tmp_path, "dma.toml", DMA_PROFILE)
    s = _scenario(tmp_path, MEMORY, platform=str(plat))
    (e,) = s.platform.dma
    c = s.platform.cpu
    ev = evaluate_scenario(s)
    S = 64 * MiB
    X = {}
    for page in (4096.0, 2 * MiB):
        cpu = _at(ev, "cpu-threads", S, **{"workload.page_bytes": page})
        dma = _at(ev, "dma-channels", S, **{"workload.page_bytes": page})
        pages = S / page
        # by hand: the CPU copies at the DRAM-regime rate plus a step per page; the DMA path's thread
        # submits and reaps a descriptor per page, the engine moves page / (page / rate + t_d)
        cpu_by_hand = S / (S / c.copy_rate_dram + pages * c.copy_page_time)
        engine = page / (page / e.rate + e.descriptor_time)
        thread = S / (pages * e.descriptor_cpu_time)
        assert ev.result.throughput.flat[cpu] == pytest.approx(min(cpu_by_hand, cap(ev, cpu, "dram"),
                                                                   cap(ev, cpu, "pipeline")))
        assert ev.result.throughput.flat[dma] == pytest.approx(min(engine, thread, cap(ev, dma, "dram"),
                                                                   cap(ev, dma, "pipeline")))
        X[page] = (ev.result.throughput.flat[cpu], ev.result.throughput.flat[dma])
    assert X[4096.0][1] < X[4096.0][0]                 # DMA loses at 4 KiB: descriptor costs dominate
    assert X[2 * MiB][1] > X[2 * MiB][0]               # ... and wins at 2 MiB


def test_dma_batch_spread_over_channels_shortens_the_batch(tmp_path):
    plat = _write(tmp_path, "dma.toml", DMA_PROFILE.replace("count = 1\n", "count = 4\n"))
    body = MEMORY.replace("dma_channels = 1", "dma_channels = 4\ndma_spread = true").replace(
        '"workload.page_bytes" = ["4KiB", "2MiB"]', '"workload.page_bytes" = ["2MiB"]')
    s = _scenario(tmp_path, body, platform=str(plat))
    (e,) = s.platform.dma
    ev = evaluate_scenario(s)
    S = 64 * MiB
    i = _at(ev, "dma-channels", S)
    one = 2 * MiB / (2 * MiB / e.rate + e.descriptor_time)
    # the batch's 32 descriptors go to 4 channels at once: S / (4 x one engine) + completion
    serving = ev.result.serving_seconds_per_io.flat[i]
    assert ev.result.latency_seconds.flat[i] == pytest.approx(serving + S / (4 * one) + e.completion_latency)
    assert cap(ev, i, "dma") == pytest.approx(4 * one)


# --- 3. cross-core copies --------------------------------------------------------------------------------

def test_a_buffer_another_core_filled_costs_the_cross_core_rate(tmp_path):
    s = schema.load_scenario("smb-tcp-100g")
    ev = evaluate_grid(s, {"workload.io_size": [64 * KiB, MiB, 8 * MiB]}, paths=None)
    tcp_async = schema.load_scenario(_write(tmp_path, "a.toml", (schema.PACKAGE_DIR / "smb-tcp-100g.toml").read_text()
                                            .replace('copy_paths = ["cpu-copy", "splice", "send-zc"]',
                                                     'copy_paths = ["async-workers"]')))
    ev = evaluate_grid(tcp_async, {"workload.io_size": [64 * KiB * 2 ** k for k in range(0, 8)],
                                   "workload.async_workers": [4], "workload.connections": [4]})
    c = s.platform.cpu
    for k, S in enumerate(ev.result.io_size):
        # worker: the cold read (+ a step per page) and the send copy from another worker's buffer
        cold = S / c.copy_rate_dram + math.ceil(S / 4096) * c.copy_page_time
        units = math.ceil(S / tcp_async.workload.gso_size)
        assert ev.result.worker_seconds_per_io[k] == pytest.approx(cold + S / c.copy_rate_cross_core
                                                                    + units * c.tcp_segment_time)
    # with the copies at per-byte rates, a worker pool's throughput never falls as I/Os grow
    assert np.all(np.diff(ev.result.throughput) >= -1e-6)


# --- 4. no fake SMB: raw-data workloads ---------------------------------------------------------------

def test_raw_data_workload_has_no_smb_request_and_no_smb_headers(tmp_path):
    text = (schema.PACKAGE_DIR / "smb-tcp-100g.toml").read_text().replace('transport = "tcp"',
                                                                          'transport = "tcp"\napplication = "none"')
    s = schema.load_scenario(_write(tmp_path, "raw.toml", text))
    smb = schema.load_scenario("smb-tcp-100g")
    raw_ev, smb_ev = (evaluate_grid(x, {"workload.io_size": [MiB], "workload.connections": [1]}) for x in (s, smb))
    d = smb_ev.result.serving_seconds_per_io - raw_ev.result.serving_seconds_per_io
    assert np.allclose(d, s.platform.cpu.smb_request_time)
    # the stream carries the data alone: MSS 1448, 90 B per segment
    assert raw_ev.result.wire_bytes_per_io[0] == MiB + math.ceil(MiB / 1448) * 90


# --- 5. per-page costs: copies, faults, pins, registrations; copy vs memory management ----------------

PAGE_PATH = '''copy_paths = ["mapped"]
[network]
links = "2x200Gbit/s"
protocol = "roce-v2"
[workload]
transport = "smbdirect"
connections = 4
outstanding_per_connection = 32
io_cores = 4
rtt = "10us"
[sweep]
io_sizes = ["1MiB"]
"workload.page_bytes" = ["4KiB", "2MiB"]
[[copy_path]]
name = "mapped"
transports = ["smbdirect"]
copies = [{who = "serving", source = "page-cache"}]
syscalls_per_io = 1
rdma_wrs_per_io = 2
maps_per_io = 1
allocs_per_io = 1
pins_per_io = 1
registrations_per_io = 1
'''


def test_memory_management_per_page_by_hand(tmp_path):
    s = _scenario(tmp_path, PAGE_PATH)
    c = s.platform.cpu
    ev = evaluate_scenario(s)
    S = MiB
    for page in (4096.0, 2 * MiB):
        i = _at(ev, "mapped", S, **{"workload.page_bytes": page})
        folios = math.ceil(S / page)
        unmap = folios * (c.page_fault_time + c.unmap_page_time) + c.tlb_shootdown_time
        mm = (unmap                                                             # map + fault + unmap
              + unmap + S / c.page_zero_rate                                    # fresh anonymous pages
              + S / 4096 * c.pin_page_time + folios * c.pin_folio_time           # pin + unpin
              + c.mr_register_time)                                             # one registration
        copy = S / c.copy_rate_dram + folios * c.copy_page_time
        assert ev.result.mm_seconds_per_io.flat[i] == pytest.approx(mm)
        assert ev.result.copy_seconds_per_io.flat[i] == pytest.approx(copy)
        serving = c.smb_request_time + c.syscall_time + 2 * c.rdma_wr_time + copy + mm
        assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(serving)
        row = report.rows(ev)[i]
        assert row["cpu_mm_s_per_gb"] == pytest.approx(mm / S * 1e9)
        assert row["cpu_copy_s_per_gb"] == pytest.approx(copy / S * 1e9)
    # 2 MiB folios cost less per byte than 4 KiB pages
    a, b = (ev.result.serving_seconds_per_io.flat[_at(ev, "mapped", S, **{"workload.page_bytes": p})]
            for p in (4096.0, 2 * MiB))
    assert b < a


# --- 6. checksum: NIC, in the copy, or a pass of its own ---------------------------------------------------

def test_checksum_own_pass_on_both_ends_and_in_the_copy(tmp_path):
    text = (schema.PACKAGE_DIR / "smb-tcp-100g.toml").read_text().replace(
        "checksum_offload = true", "checksum_offload = false").replace("async_workers = 4", "async_workers = 4\nclient_cores = 4")
    s = schema.load_scenario(_write(tmp_path, "c.toml", text))
    on = schema.load_scenario(_write(tmp_path, "on.toml", text.replace("checksum_offload = false",
                                                                       "checksum_offload = true")))
    c = s.platform.cpu
    S = MiB
    off_ev, on_ev = (evaluate_grid(x, {"workload.io_size": [S], "workload.connections": [1]}) for x in (s, on))
    csum = S / c.tcp_checksum_rate
    # the kernel's TCP send copy does not checksum (tcp_checksum_in_copy false): a pass at the sender,
    # another at the receiver (the client's receive softirq)
    assert np.allclose(off_ev.result.serving_seconds_per_io - on_ev.result.serving_seconds_per_io, csum)
    assert np.allclose(off_ev.result.client_flow_seconds_per_io - on_ev.result.client_flow_seconds_per_io, csum)
    names = [r["checksum"] for r in report.rows(off_ev)]
    assert set(names) == {"own pass"} and {r["checksum"] for r in report.rows(on_ev)} == {"NIC"}
    # a kernel that checksums while it copies: the send copy (cpu-copy's buffer -> skb) runs at the
    # copy+checksum rate instead; paths without a send copy (splice, send-zc) still pay a pass
    from models.sweep import evaluate_with_overrides
    ev = evaluate_with_overrides(s, {"cpu.tcp_checksum_in_copy": 1.0},
                                 grid={"workload.io_size": [S], "workload.connections": [1]})
    rows = report.rows(ev)
    i = next(k for k, r in enumerate(rows) if r["copy_path"] == "cpu-copy")
    j = next(k for k, r in enumerate(rows) if r["copy_path"] == "splice")
    warm = S / c.copy_rate_cache                                   # 1 MiB within cache_per_core
    base = on_ev.result.serving_seconds_per_io
    assert S <= c.cache_per_core
    assert ev.result.serving_seconds_per_io[i] == pytest.approx(base[i] + max(S / c.csum_copy_rate - warm, 0.0))
    assert ev.result.serving_seconds_per_io[j] == pytest.approx(base[j] + csum)
    assert rows[i]["checksum"] == "in the copy" and rows[j]["checksum"] == "own pass"


# --- 7. NUMA -------------------------------------------------------------------------------------------------

def test_numa_placement_by_hand(tmp_path):
    s = schema.load_scenario("smbdirect-2x200g")
    c, m = s.platform.cpu, s.platform.memory
    S = 8 * MiB
    i = [p.name for p in s.copy_paths].index("cpu-copy")
    ev = evaluate_grid(s, {"workload.io_size": [S]}, paths=[i])
    base = ev.result.serving_seconds_per_io[0]
    f = (c.sockets - 1) / c.sockets
    for placement, code in (("spread", 1), ("unpinned", 2)):
        t = schema.load_scenario(_write(tmp_path, f"{placement}.toml", (schema.PACKAGE_DIR / "smbdirect-2x200g.toml")
                                        .read_text().replace("[workload]", f'[workload]\nplacement = "{placement}"')))
        ev2 = evaluate_grid(t, {"workload.io_size": [S]}, paths=[i])
        cold_local, cold_remote = S / c.copy_rate_dram, S / c.copy_rate_remote
        # the page cache is on the other socket for a share (s-1)/s of the copies
        assert ev2.result.serving_seconds_per_io[0] == pytest.approx(base - cold_local + (1 - f) * cold_local
                                                                     + f * cold_remote)
        # every socket's cores and DRAM serve; the NIC's DMA (1 B) and the remote copies cross the link
        assert cap(ev2, 0, "cpu-all") == pytest.approx(c.cores * c.sockets * S / ev2.result.cpu_seconds_per_byte[0] / S)
        per_copy = 1 if code == 1 else 1 + (1 if c.nontemporal_copy else 2)
        assert cap(ev2, 0, "socket-link") == pytest.approx(m.inter_socket_bandwidth / (f * (1 + per_copy)))
        assert cap(ev2, 0, "dram") == pytest.approx(c.sockets * m.dram_bandwidth / ev2.result.dram_bytes_per_byte[0])
    assert np.isinf(cap(ev, 0, "socket-link"))       # local: nothing crosses


# --- 8. per-flow limits on TCP, the window -----------------------------------------------------------------

WRITE_TCP = '''copy_paths = ["cpu-copy"]
[network]
links = "4x400Gbit/s"
protocol = "tcp"
mtu = "1500B"
[workload]
transport = "tcp"
operation = "write"
connections = 1
outstanding_per_connection = 64
io_cores = 64
rtt = "20us"
tso = false
[sweep]
io_sizes = ["1MiB"]
"workload.connections" = [1, 2, 4, 8, 16, 32, 64]
'''


def test_adding_tcp_connections_stops_helping_once_the_flows_cores_bind(tmp_path):
    # a NIC with 4 receive queues: a WRITE's receive softirq (GRO units x t_receive) runs on the core of
    # the queue RSS hashed the connection to; 4 queues hold the flows, whatever their number
    plat = _write(tmp_path, "q4.toml", 'name = "q4"\nbase = "xeon-8470-cx7"\n[nic]\nrss_queues = 4\n'
                  'rss_queues_source = "test: a NIC with 4 receive queues"\nport_rate = "400Gbit/s"\n'
                  'port_rate_source = "test"\n')
    s = _scenario(tmp_path, WRITE_TCP, platform=str(plat))
    c = s.platform.cpu
    ev = evaluate_scenario(s)
    X = ev.result.throughput
    S = MiB
    # no GRO: one receive per MSS segment (1500 - 52 = 1448 B), + the SMB2 request's
    flow_work = math.ceil(S / 1448) * c.tcp_receive_time + c.tcp_receive_time
    for k, n in enumerate((1, 2, 4, 8, 16, 32, 64)):
        queues = 4 * (1 - (1 - 1 / 4) ** n)                    # expected queues carrying >= 1 of n flows
        assert cap(ev, k, "cpu-flows") == pytest.approx(queues * S / flow_work)
    assert X[1] > X[0]                                         # a second connection helps
    assert RESOURCES[ev.result.binding[-1]] == "cpu-flows"     # at 64 the flows' 4 cores bind
    assert X[-1] <= 4 * S / flow_work * (1 + 1e-9)             # never more than 4 cores of receive work
    assert X[-1] / X[-2] < 1.01                                # and more connections stop helping


def test_tcp_window_caps_a_connection(tmp_path):
    s = schema.load_scenario(_write(tmp_path, "w.toml", (schema.PACKAGE_DIR / "smb-tcp-100g.toml").read_text()
                                    .replace('rtt = "20us"', 'rtt = "10ms"\ntcp_window = "64KiB"')))
    ev = evaluate_grid(s, {"workload.io_size": [MiB], "workload.connections": [1, 4]}, paths=[1])
    # splice: window / RTT per connection (64 KiB / 10 ms = 6.55 MB/s), Little's law far above it
    for k, n in enumerate((1, 4)):
        assert cap(ev, k, "pipeline") == pytest.approx(n * 65536 / 10e-3)
        assert RESOURCES[ev.result.binding[k]] == "pipeline"


# --- 10. receive side, the client end, which end binds ---------------------------------------------------

def test_the_client_end_by_hand_and_named_when_it_binds(tmp_path):
    text = (schema.PACKAGE_DIR / "smb-tcp-100g.toml").read_text().replace("async_workers = 4",
                                                                          "async_workers = 4\nclient_cores = 1")
    s = schema.load_scenario(_write(tmp_path, "cl.toml", text))
    c = s.platform.cpu
    S = MiB
    ev = evaluate_grid(s, {"workload.io_size": [S], "workload.connections": [4]}, paths=[1])   # splice
    units = S / s.workload.gso_size
    # the client thread: its SMB2 request (build, send: a call + a segment), one recv call, the copy out
    # of skbs the NIC wrote (cross-core rate); its flows: the GRO units + the ACK to the request
    client = (c.smb_client_time + c.syscall_time + c.tcp_segment_time + c.syscall_time + S / c.copy_rate_cross_core)
    client_flows = units * c.tcp_receive_time + c.tcp_ack_time
    assert ev.result.client_seconds_per_io[0] == pytest.approx(client)
    assert ev.result.client_flow_seconds_per_io[0] == pytest.approx(client_flows)
    assert cap(ev, 0, "client-cpu") == pytest.approx(1 * S / client)         # min(1 client core, 4 connections)
    # the server's flows: the ACKs (one per GRO unit) and the request's receive
    assert ev.result.flow_seconds_per_io[0] == pytest.approx(units * c.tcp_ack_time + c.tcp_receive_time)
    row = report.rows(ev)[0]
    assert row["binding"] == "client-cpu" and row["binding_end"] == "client"


# --- 11. where work runs ------------------------------------------------------------------------------------

def test_workers_take_the_send_stack_when_the_path_says_so(tmp_path):
    text = (schema.PACKAGE_DIR / "smb-tcp-100g.toml").read_text().replace(
        'copy_paths = ["cpu-copy", "splice", "send-zc"]', 'copy_paths = ["uring-send", "uring-send-async"]')
    s = schema.load_scenario(_write(tmp_path, "w.toml", text + '''
[[copy_path]]
name = "uring-send"
transports = ["tcp"]
copies = [{who = "serving", source = "page-cache"}]
syscalls_per_io = 1
[[copy_path]]
name = "uring-send-async"
transports = ["tcp"]
copies = [{who = "workers", source = "page-cache"}]
syscalls_per_io = 1
handoffs_per_io = 1
workers_take = ["stack", "calls"]
'''))
    c = s.platform.cpu
    S = MiB
    ev = evaluate_grid(s, {"workload.io_size": [S], "workload.connections": [1]})
    stack = S / s.workload.gso_size * c.tcp_segment_time
    cold = S / c.copy_rate_dram + S / 4096 * c.copy_page_time
    assert ev.result.serving_seconds_per_io[0] == pytest.approx(c.smb_request_time + c.syscall_time + cold + stack)
    # IOSQE_ASYNC: the copy, the call's kernel work and the TCP send work run in the io-wq worker
    assert ev.result.serving_seconds_per_io[1] == pytest.approx(c.smb_request_time + c.async_handoff_time)
    assert ev.result.worker_seconds_per_io[1] == pytest.approx(cold + c.syscall_time + stack)


# --- 12. loopback: both ends on one host -------------------------------------------------------------------

def test_tcp_loopback_places_the_receive_work_on_the_sending_core():
    s = schema.load_scenario("smb-tcp-loopback")
    c = s.platform.cpu
    S = MiB
    names = [p.name for p in s.copy_paths]
    ev = evaluate_grid(s, {"workload.io_size": [S]}, paths=[names.index("sendfile")])
    units = S / s.workload.gso_size
    # sender's core: the call, the send work, and the receive softirq + ACKs its sends trigger (lo hands
    # each packet to netif_rx on the sending CPU); the receiver's core: its call and its copy
    sender = c.syscall_time + units * (c.tcp_segment_time + c.tcp_receive_time + c.tcp_ack_time)
    receiver = c.syscall_time + S / c.copy_rate_cross_core
    assert ev.result.serving_seconds_per_io[0] == pytest.approx(sender)
    assert ev.result.client_seconds_per_io[0] == pytest.approx(receiver)
    assert ev.result.flow_seconds_per_io[0] == 0 and ev.result.client_flow_seconds_per_io[0] == 0
    assert np.isinf(cap(ev, 0, "links")) and np.isinf(cap(ev, 0, "pcie"))
    assert cap(ev, 0, "cpu-all") == pytest.approx(c.cores * S / (sender + receiver))
    assert min(cap(ev, 0, "cpu-serving"), cap(ev, 0, "client-cpu")) == pytest.approx(S / max(sender, receiver))
    # DRAM: no NIC; the receiver's copy (3x with write-allocate)
    assert ev.result.dram_bytes_per_byte[0] == (2 if c.nontemporal_copy else 3)


# --- 13. software RDMA (soft-RoCE) -------------------------------------------------------------------------

SOFT_LOOPBACK = '''copy_paths = ["cpu-copy", "zero-copy"]
[network]
protocol = "roce-v2"
medium = "loopback"
mtu = "1500B"
[workload]
transport = "smbdirect"
connections = 1
outstanding_per_connection = 8
io_cores = 1
client_cores = 1
poster_polls = true
rtt = "10us"
[sweep]
io_sizes = ["64KiB", "1MiB"]
'''


# a budget no chain of these sizes outlasts: every chain runs in the posting task (the deferral apart)
WHOLE_BUDGET = '[cpu]\nsoftirq_budget = "100ms"\nsoftirq_budget_source = "test: no chain deferred"\n'


def test_soft_rdma_read_on_loopback_by_hand(tmp_path):
    plat = _write(tmp_path, "soft.toml", SOFT_PLATFORM + WHOLE_BUDGET)
    s = _scenario(tmp_path, SOFT_LOOPBACK, platform=str(plat))
    c, n = s.platform.cpu, s.platform.nic
    ev = evaluate_scenario(s)
    for S in (64 * KiB, MiB):
        i = _at(ev, "cpu-copy", S)
        pmtu = 1024                                     # Ethernet MTU 1500 -> RoCE path MTU 1024
        pkts = math.ceil(S / pmtu)
        acks = math.ceil(pkts / 66) + 1                 # rxe: one ACK per 66 packets and per message, + the response's
        warm = S / c.copy_rate_cache if S <= c.cache_per_core else None
        crc = S / n.soft_crc_rate
        cold = S / c.copy_rate_dram + math.ceil(S / 4096) * c.copy_page_time
        # the server's core: the SMB2 request, pread (cold copy), 2 WRs posted (user + kernel), the
        # WRITE + response SEND sent (pkts + 1 packets, the MR -> skb copy + ICRC), and on loopback the
        # client's receive (pkts + 1 packets, ICRC + skb -> MR copy, ACKs sent) and the ACKs' receive
        server = (c.smb_request_time + c.syscall_time + cold + 2 * c.rdma_wr_time
                  + 2 * n.soft_wr_time + (pkts + 1) * n.soft_packet_time + warm + crc
                  + (pkts + 1) * n.soft_packet_time + crc + warm + acks * n.soft_packet_time
                  + acks * n.soft_packet_time)
        # the client's core: its request (build, post SEND + RECV), the SEND's packet, its receive by the
        # server (packet + ACK sent) and the ACK's receive
        client = (c.smb_client_time + 2 * c.rdma_wr_time + n.soft_wr_time + n.soft_packet_time
                  + 2 * n.soft_packet_time + n.soft_packet_time)
        assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(server)
        assert ev.result.client_seconds_per_io.flat[i] == pytest.approx(client)
        assert np.isinf(cap(ev, i, "links")) and np.isinf(cap(ev, i, "cpu-flows"))
        assert cap(ev, i, "cpu-all") == pytest.approx(c.cores * S / (server + client))
        # zero-copy: the MR is page-cache pages (cold, but mapped: no per-page lookups) for the sending
        # copy, 4 WRs
        j = _at(ev, "zero-copy", S)
        zc = (c.smb_request_time + 4 * c.rdma_wr_time + 4 * n.soft_wr_time + 2 * (pkts + 1) * n.soft_packet_time
              + S / c.copy_rate_dram + 2 * crc + warm + 2 * acks * n.soft_packet_time)
        assert ev.result.serving_seconds_per_io.flat[j] == pytest.approx(zc)


def test_each_end_pays_its_own_smb_request_time(tmp_path):
    plat = _write(tmp_path, "soft.toml", SOFT_PLATFORM + WHOLE_BUDGET)
    s = _scenario(tmp_path, SOFT_LOOPBACK, platform=str(plat))
    ev = evaluate_grid(s, {"workload.io_size": [MiB], "cpu.smb_request_time": [1e-3, 2e-3],
                           "cpu.smb_client_time": [1e-3, 4e-3]}, paths=[0])
    serving = ev.result.serving_seconds_per_io.reshape(2, 2)    # [server's figure, client's figure]
    client = ev.result.client_seconds_per_io.reshape(2, 2)
    assert np.allclose(serving[1] - serving[0], 1e-3) and np.allclose(serving[:, 1], serving[:, 0])
    assert np.allclose(client[:, 1] - client[:, 0], 3e-3) and np.allclose(client[1], client[0])


def test_a_copying_thread_runs_part_of_the_deferred_chain(tmp_path):
    """Loopback, software RDMA, a chain longer than the posting task keeps: the cpu-copy server's
    pread runs nic.soft_copy_absorption x its own time of what ksoftirqd would run; the server +
    ksoftirqd total stays; the zero-copy server (no page-cache copy) is untouched."""
    budget = '[cpu]\nsoftirq_budget = "1ms"\nsoftirq_budget_source = "test"\n'
    evs = {}
    for a in (0.0, 0.5):
        text = SOFT_PLATFORM.replace("soft_copy_absorption = 0\n", f"soft_copy_absorption = {a}\n") + budget
        plat = _write(tmp_path, f"p{a}.toml", text)
        s = _scenario(tmp_path, SOFT_LOOPBACK, platform=str(plat), name=f"s{a}.toml")
        evs[a] = (evaluate_scenario(s), s.platform.cpu)
    (none, c), (half, _) = evs[0.0], evs[0.5]
    for S in (64 * KiB, MiB):
        i = _at(none, "cpu-copy", S)
        cold = S / c.copy_rate_dram + math.ceil(S / 4096) * c.copy_page_time
        deferred = none.result.host_softirq_seconds_per_io.flat[i]
        soaked = min(0.5 * cold, deferred)
        assert half.result.serving_seconds_per_io.flat[i] == pytest.approx(
            none.result.serving_seconds_per_io.flat[i] + soaked)
        assert half.result.host_softirq_seconds_per_io.flat[i] == pytest.approx(deferred - soaked)
        j = _at(none, "zero-copy", S)
        assert half.result.serving_seconds_per_io.flat[j] == pytest.approx(none.result.serving_seconds_per_io.flat[j])
    assert any(none.result.host_softirq_seconds_per_io.flat[_at(none, "cpu-copy", S)] > 0 for S in (64 * KiB, MiB))


def _loopback_chain(S: float, c, n) -> float:
    """The chain of a READ's RDMA WRITE + response SEND beyond the 2 WRs' kernel cost, by hand
    (loopback: the packets sent and received, the ACKs both ways, the ICRC and the MR <-> skb copy
    at each end)."""
    pkts = math.ceil(S / 1024)
    acks = math.ceil(pkts / 66) + 1
    return (2 * (pkts + 1) + 2 * acks) * n.soft_packet_time + 2 * S / n.soft_crc_rate + 2 * S / c.copy_rate_cache


def test_ksoftirqd_runs_what_a_soft_chain_needs_beyond_the_softirq_budget(tmp_path):
    """Loopback, software RDMA: a post's chain runs in the posting task up to one softirq budget,
    the rest in ksoftirqd (neither end's threads); both ends' CPU per I/O stays what it was, and the
    deferred work is a flow's (one core per connection)."""
    inline = _scenario(tmp_path, SOFT_LOOPBACK, platform=str(_write(tmp_path, "a.toml", SOFT_PLATFORM + WHOLE_BUDGET)))
    budget = 1e-3
    plat = _write(tmp_path, "b.toml", SOFT_PLATFORM + '[cpu]\nsoftirq_budget = "1ms"\nsoftirq_budget_source = "test"\n')
    split = _scenario(tmp_path, SOFT_LOOPBACK, platform=str(plat), name="u.toml")
    c, n = split.platform.cpu, split.platform.nic
    a, b = evaluate_scenario(inline), evaluate_scenario(split)
    for S in (64 * KiB, MiB):
        i = _at(a, "cpu-copy", S)
        chain = _loopback_chain(S, c, n)
        deferred = b.result.host_softirq_seconds_per_io.flat[i]
        if chain > budget:               # 1 MiB: 0.5 ms of ICRC at each end and 2000 packets
            assert S == MiB
            assert deferred == pytest.approx(chain - budget)       # the poster ran one budget's worth
            assert b.result.serving_seconds_per_io.flat[i] == pytest.approx(
                a.result.serving_seconds_per_io.flat[i] - (chain - budget))
            assert b.result.flow_seconds_per_io.flat[i] == deferred
            assert cap(b, i, "cpu-flows") == pytest.approx(S / deferred)
        else:                            # 64 KiB fits: the same figures as with an endless budget
            assert S == 64 * KiB and deferred == 0.0
            assert b.result.serving_seconds_per_io.flat[i] == pytest.approx(a.result.serving_seconds_per_io.flat[i])
            assert np.isinf(cap(b, i, "cpu-flows"))
        # the same work either way: both ends' CPU, hence cpu-all, does not depend on where it runs
        assert cap(b, i, "cpu-all") == pytest.approx(cap(a, i, "cpu-all"))
        assert a.result.host_softirq_seconds_per_io.flat[i] == 0.0
    # a connection's deferred chain stays on the CPU its poster sent from (veth: netif_rx on the
    # sending CPU; rxe's tasklets on the CPU that schedules them): N connections whose posters sit
    # on any of the Q cores occupy Q (1 - (1 - 1/Q)^N) of them on average
    two = evaluate_grid(split, {"workload.io_size": [MiB], "workload.connections": [2]}, paths=[0])
    q = c.cores
    assert cap(two, 0, "cpu-flows") == pytest.approx(
        q * (1 - (1 - 1 / q) ** 2) * MiB / two.result.flow_seconds_per_io.flat[0])
    # serving threads pinned round robin to k cores (measure smbd --serving-cpus): their chains sit on
    # min(connections, k) of them, whatever the scheduler would have done
    for k, cores in ((1, 1), (2, 2), (3, 2)):
        pinned = evaluate_grid(split, {"workload.io_size": [MiB], "workload.connections": [2],
                                       "workload.serving_pinned_cores": [k]}, paths=[0])
        assert cap(pinned, 0, "cpu-flows") == pytest.approx(min(cores, q) * MiB / two.result.flow_seconds_per_io.flat[0])
        assert cap(pinned, 0, "cpu-all") == pytest.approx(cap(two, 0, "cpu-all"))      # the same work



def test_a_sleeping_poster_keeps_what_a_memoryless_hand_over_leaves_it(tmp_path):
    """A poster that sleeps on completion events (the SMB Direct serving threads) runs its chain
    until the kernel hands the rest to ksoftirqd, on average soft_inline_time (1 - e^(-chain / t))
    of it; both ends' CPU is the same wherever the chain runs."""
    from models.resources import inline_time_of, kept_inline
    plat = _write(tmp_path, "b.toml", SOFT_PLATFORM + '[cpu]\nsoftirq_budget = "1ms"\nsoftirq_budget_source = "test"\n')
    polls = _scenario(tmp_path, SOFT_LOOPBACK, platform=str(plat))
    sleeps = _scenario(tmp_path, SOFT_LOOPBACK.replace("poster_polls = true\n", ""), platform=str(plat), name="u.toml")
    c, n = sleeps.platform.cpu, sleeps.platform.nic
    a, b = evaluate_scenario(polls), evaluate_scenario(sleeps)
    for S in (64 * KiB, MiB):
        i = _at(a, "cpu-copy", S)
        chain = _loopback_chain(S, c, n)
        kept = n.soft_inline_time * (1 - math.exp(-chain / n.soft_inline_time))
        assert b.result.host_softirq_seconds_per_io.flat[i] == pytest.approx(chain - kept)
        assert a.result.host_softirq_seconds_per_io.flat[i] == pytest.approx(max(chain - c.softirq_budget, 0.0))
        assert cap(b, i, "cpu-all") == pytest.approx(cap(a, i, "cpu-all"))
    # the law: all of a short chain, at most the mean of a long one, none with t = 0; and its inverse
    assert kept_inline(1e-6, 3e-3) == pytest.approx(1e-6, rel=1e-3)
    assert kept_inline(1.0, 3e-3) == pytest.approx(3e-3)
    assert kept_inline(1e-3, 0.0) == 0.0
    assert inline_time_of(float(kept_inline(0.02, 7e-3)), 0.02) == pytest.approx(7e-3, rel=1e-6)
    assert inline_time_of(0.02, 0.02) is None and inline_time_of(0.0, 0.02) is None

def test_spinning_threads_and_ksoftirqd_share_the_loopback_hosts_cores(tmp_path):
    """Busy polling on loopback with a soft NIC: the spinning serving and client threads and the
    ksoftirqds that run the deferred chains are all runnable on the host's cores, so what they use
    together at the throughput never exceeds the cores."""
    plat = _write(tmp_path, "b.toml", SOFT_PLATFORM + '[cpu]\nsoftirq_budget = "1ms"\nsoftirq_budget_source = "test"\n'
                  'cores = 2\ncores_source = "test: a 2-core host"\n')
    s = _scenario(tmp_path, SOFT_LOOPBACK.replace("rtt =", "busy_poll = true\nrtt ="), platform=str(plat))
    ev = evaluate_grid(s, {"workload.io_size": [64 * KiB, MiB, 8 * MiB], "workload.connections": [1, 2]})
    r = ev.result
    used = r.throughput * r.both_ends_seconds_per_byte
    assert (r.host_softirq_seconds_per_io > 0).any()
    assert (used <= 2.0 * (1 + 1e-9)).all(), used


def test_the_client_checks_what_it_reads_and_registers_per_io_when_told(tmp_path):
    plat = _write(tmp_path, "soft.toml", SOFT_PLATFORM + WHOLE_BUDGET)
    plain = _scenario(tmp_path, SOFT_LOOPBACK, platform=str(plat))
    checks = _scenario(tmp_path, SOFT_LOOPBACK.replace("client_cores = 1\n", "client_cores = 1\nclient_checks_data = true\n"
                                                      "client_registers_per_io = true\n"),
                       platform=str(plat), name="c.toml")
    c = checks.platform.cpu
    a, b = evaluate_scenario(plain), evaluate_scenario(checks)
    for S in (64 * KiB, MiB):
        i = _at(a, "zero-copy", S)
        # a CRC-32 pass over the bytes read, and a registration of the client's 4 KiB anonymous pages
        extra = S / c.crc32_rate + c.mr_register_time + (S / 4096) * (c.pin_page_time + c.pin_folio_time)
        assert b.result.client_seconds_per_io.flat[i] - a.result.client_seconds_per_io.flat[i] == pytest.approx(extra)
        assert b.result.serving_seconds_per_io.flat[i] == a.result.serving_seconds_per_io.flat[i]
    # a WRITE: the client sends what it holds; there is nothing read to check
    sizes = [64 * KiB, MiB]
    w_plain = evaluate_grid(plain, {"workload.io_size": sizes, "workload.operation_code": [1]})
    w_checks = evaluate_grid(checks, {"workload.io_size": sizes, "workload.operation_code": [1],
                                      "workload.client_registers_per_io": [0]})
    assert np.allclose(w_checks.result.client_seconds_per_io, w_plain.result.client_seconds_per_io)


def test_soft_rdma_through_a_nic_puts_receive_work_on_the_flows(tmp_path):
    plat = _write(tmp_path, "soft.toml", SOFT_PLATFORM)
    s = _scenario(tmp_path, SOFT_LOOPBACK.replace('medium = "loopback"\n', 'links = "1x100Gbit/s"\n'),
                  platform=str(plat))
    c, n = s.platform.cpu, s.platform.nic
    ev = evaluate_scenario(s)
    S = MiB
    i = _at(ev, "cpu-copy", S)
    pkts = S / 1024
    acks = math.ceil(pkts / 66) + 1
    # the server's flow (its completer): the ACKs coming back + the request received (packet + ACK sent)
    assert ev.result.flow_seconds_per_io.flat[i] == pytest.approx(acks * n.soft_packet_time + 2 * n.soft_packet_time)
    # the client's flow: the data received through its NIC: packets, ICRC, the copy from skbs the NIC
    # wrote into the MR (cross-core rate), ACKs
    client_flow = ((pkts + 1) * n.soft_packet_time + S / n.soft_crc_rate + S / c.copy_rate_cross_core
                   + acks * n.soft_packet_time + n.soft_packet_time)
    assert ev.result.client_flow_seconds_per_io.flat[i] == pytest.approx(client_flow)
    assert cap(ev, i, "cpu-flows") == pytest.approx(1 * S / ev.result.flow_seconds_per_io.flat[i])


def test_roce_loopback_needs_software_rdma(tmp_path):
    from scenarios.errors import InputError
    with pytest.raises(InputError, match="needs software RDMA"):
        _scenario(tmp_path, SOFT_LOOPBACK)


# --- other tenants, copies from a mapping ---------------------------------------------------------------

def test_other_tenants_leave_each_core_the_rest_of_its_time(tmp_path):
    s = schema.load_scenario("smb-tcp-loopback")
    names = [p.name for p in s.copy_paths]
    cores = s.platform.cpu.cores
    ev = evaluate_grid(s, {"workload.io_size": [MiB], "workload.foreign_load": [0.0, 0.5 * cores]},
                       paths=[names.index("sendfile")])
    # half the host's CPU taken by others: every CPU resource carries half as much
    for res in ("cpu-serving", "client-cpu", "cpu-all"):
        assert cap(ev, 1, res) == pytest.approx(0.5 * cap(ev, 0, res)), res
    assert ev.result.throughput[1] == pytest.approx(0.5 * ev.result.throughput[0])
    # CPU per GB does not change: the work is the same
    assert ev.result.cpu_seconds_per_byte[1] == pytest.approx(ev.result.cpu_seconds_per_byte[0])


def test_a_copy_from_a_mapping_has_no_page_cache_lookups():
    s = schema.load_scenario("smb-tcp-loopback")
    c = s.platform.cpu
    names = [p.name for p in s.copy_paths]
    ev = evaluate_grid(s, {"workload.io_size": [MiB]}, paths=[names.index("rw"), names.index("uring-send")])
    units = MiB / s.workload.gso_size
    stack = units * (c.tcp_segment_time + c.tcp_receive_time + c.tcp_ack_time)
    # rw: pread through the page cache (per byte + a step per page) + send from the reused buffer
    assert ev.result.serving_seconds_per_io[0] == pytest.approx(
        2 * c.syscall_time + MiB / c.copy_rate_dram + MiB / 4096 * c.copy_page_time + MiB / c.copy_rate_cache + stack)
    # uring-send: one copy from the file's mapping, cold lines, no lookups
    assert ev.result.serving_seconds_per_io[1] == pytest.approx(c.syscall_time + MiB / c.copy_rate_dram + stack)


def test_busy_polling_threads_keep_their_cores_busy(tmp_path):
    """With busy polling a serving thread spins on its completion queue: its CPU is its core share
    all the time (per byte: share / X), and when the host's runnable threads (spinners and busy
    workers) outnumber its cores the scheduler shares the cores equally."""
    # (no chain outlasts the softirq budget here: ksoftirqd sharing the cores is
    # test_spinning_threads_and_ksoftirqd_share_the_loopback_hosts_cores)
    plat = _write(tmp_path, "soft.toml", SOFT_PLATFORM.replace('base = "xeon-8470-cx7"',
                                                               'base = "xeon-8470-cx7"\n[cpu]\ncores = 2\n'
                                                               'cores_source = "test: the guest\'s 2 vCPUs"\n'
                                                               'softirq_budget = "100ms"\n'
                                                               'softirq_budget_source = "test: nothing deferred"'))
    body = SOFT_LOOPBACK.replace('copy_paths = ["cpu-copy", "zero-copy"]', 'copy_paths = ["cpu-copy", "async-workers"]')
    quiet = _scenario(tmp_path, body, platform=str(plat), name="q.toml")
    spin = _scenario(tmp_path, body.replace("client_cores = 1", "client_cores = 1\nbusy_poll = true\nasync_workers = 2"),
                     platform=str(plat), name="s.toml")
    S = MiB
    q, b = (evaluate_grid(x, {"workload.io_size": [S]}) for x in (quiet, spin))
    # cpu-copy: one serving + one client thread spin on 2 cores: each keeps its core (share 1)
    assert cap(b, 0, "cpu-serving") == pytest.approx(cap(q, 0, "cpu-serving"))
    X = b.result.throughput[0]
    assert b.result.cpu_seconds_per_byte[0] == pytest.approx(1.0 / X)
    assert b.result.client_cpu_seconds_per_byte[0] == pytest.approx(1.0 / X)
    assert b.result.cpu_seconds_per_byte[0] >= q.result.cpu_seconds_per_byte[0]
    # async-workers: 1 serving + 1 client spinner + 2 busy workers on 2 cores: each gets half a core
    share = 2 / 4
    assert cap(b, 1, "cpu-serving") == pytest.approx(share * S / b.result.serving_seconds_per_io[1])
    assert cap(b, 1, "cpu-workers") == pytest.approx(2 * share * S / b.result.worker_seconds_per_io[1])
    X = b.result.throughput[1]
    assert b.result.cpu_seconds_per_byte[1] == pytest.approx(share / X + b.result.worker_seconds_per_io[1] / S)


# --- incast (issue 12): N client hosts share one server ---------------------------------------------

INCAST = '''copy_paths = ["cpu-copy"]
[network]
links = "2x200Gbit/s"
protocol = "roce-v2"
[workload]
transport = "smbdirect"
connections = 1
outstanding_per_connection = 32
io_cores = 4
client_cores = 1
rtt = "10us"
[sweep]
io_sizes = ["1MiB"]
"workload.clients" = [1, 2, 4, 8, 16]
'''


def test_clients_share_the_servers_links_cores_and_pipeline(tmp_path):
    ev = evaluate_scenario(_scenario(tmp_path, INCAST, platform="epyc-9654-cx7"))
    rows = [_at(ev, "cpu-copy", MiB, **{"workload.clients": n}) for n in (1, 2, 4, 8, 16)]
    links = [cap(ev, i, "links") for i in rows]
    serving = [cap(ev, i, "cpu-serving") for i in rows]
    client = [cap(ev, i, "client-cpu") for i in rows]
    # one connection per client runs on one link: a second client brings the second link, no more after
    assert links[1] == pytest.approx(2 * links[0]) and links[4] == pytest.approx(links[1])
    # serving threads = min(io_cores 4, the server's connections): they stop growing at 4 clients
    assert serving[1] == pytest.approx(2 * serving[0]) and serving[2] == pytest.approx(4 * serving[0])
    assert serving[4] == pytest.approx(serving[2])
    # every client host brings its own client core
    assert client[4] == pytest.approx(16 * client[0])
    # the aggregate never falls as clients are added, and ends bound by a server-side resource
    x = [float(ev.result.throughput.flat[i]) for i in rows]
    assert all(b >= a * (1 - 1e-12) for a, b in zip(x, x[1:]))
    assert RESOURCES[int(ev.result.binding.flat[rows[4]])] not in ("client-cpu", "client-flows", "pipeline")


def test_one_client_is_the_model_without_the_clients_field(tmp_path):
    with_field = evaluate_scenario(_scenario(tmp_path, INCAST.replace(
        '"workload.clients" = [1, 2, 4, 8, 16]\n', "").replace("client_cores = 1\n", "client_cores = 1\nclients = 1\n"),
        platform="epyc-9654-cx7", name="a.toml"))
    without = evaluate_scenario(_scenario(tmp_path, INCAST.replace('"workload.clients" = [1, 2, 4, 8, 16]\n', ""),
                                          platform="epyc-9654-cx7", name="b.toml"))
    assert np.array_equal(with_field.result.capacity, without.result.capacity)
