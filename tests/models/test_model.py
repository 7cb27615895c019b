"""The model against hand-computed cases and its invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import resources
from models.bottleneck import RESOURCES
from models import report
from models.sweep import evaluate_grid, evaluate_scenario, evaluate_with_overrides
from models.target import requirements
from scenarios import copy_paths, schema

MiB = 1024 * 1024

# --- the equations of docs/model.md, written out here (never the model's own functions) ------------
# Expected values below come from these and from the figures of the platform each test loads, so a
# recalibrated profile moves the expectation with it while a wrong equation in the model still fails.
ROCE_PACKET = 20 + 14 + 4 + 20 + 8 + 12 + 4      # preamble+IFG, Ethernet header, FCS, IPv4, UDP, BTH, ICRC
RETH = 16
SMBD_RESPONSE = 24 + 64 + 16                      # SMB Direct data header + SMB2 header + READ response
TCP_SEGMENT = 20 + 14 + 4 + 20 + 20 + 12          # preamble+IFG, Ethernet, FCS, IPv4, TCP, timestamps
SMB_TCP_HEADERS = 4 + 64 + 16                     # NetBIOS length + SMB2 header + READ response
PCIE_GTS = {1: 2.5e9, 2: 5e9, 3: 8e9, 4: 16e9, 5: 32e9}
WQE = 64                                          # bytes the NIC fetches per work request


def roce_wire_by_hand(S: float, eth_mtu: float) -> float:
    pmtu = max(m for m in (256, 512, 1024, 2048, 4096) if m <= eth_mtu - 96)
    return S + math.ceil(S / pmtu) * ROCE_PACKET + RETH + SMBD_RESPONSE + ROCE_PACKET


def tcp_wire_by_hand(S: float, eth_mtu: float) -> float:
    stream = S + SMB_TCP_HEADERS
    return stream + math.ceil(stream / (eth_mtu - 20 - 20 - 12)) * TCP_SEGMENT


def pcie_rate_by_hand(pcie) -> float:
    encoding = 8 / 10 if pcie.generation <= 2 else 128 / 130
    return PCIE_GTS[pcie.generation] * pcie.lanes * encoding / 8


def pcie_read_bytes_by_hand(S: float, pcie, work_requests: int) -> float:
    return (S + math.ceil(S / min(pcie.read_completion, pcie.max_payload)) * pcie.tlp_overhead
            + work_requests * (WQE + pcie.tlp_overhead))


def cold_copy_by_hand(S: float, c, page: float = 4096) -> float:
    """A copy from the page cache: S at the one-core DRAM-regime rate + one step per page (folio)."""
    return S / c.copy_rate_dram + math.ceil(S / page) * c.copy_page_time


def pins_by_hand(S: float, c, page: float = 4096) -> float:
    """Pin + unpin an I/O's pages: per 4 KiB page + per folio."""
    return math.ceil(S / 4096) * c.pin_page_time + math.ceil(S / page) * c.pin_folio_time


def one_engine_by_hand(engine, descriptor: float = 4096) -> float:
    return descriptor / (descriptor / engine.rate + engine.descriptor_time)


def smbd_capacities_by_hand(s, S: float, serving: float, cpu_copies: int, wrs: int, workers: float = 0.0) -> dict:
    """Capacities of an SMB Direct READ point whose path uses no DMA engine (payload bytes/s)."""
    w, p = s.workload, s.platform
    links_used = min(s.link.count, w.connections)
    wire = roce_wire_by_hand(S, s.link.mtu)
    per_copy = 2 if p.cpu.nontemporal_copy else 3
    caps = {"links": links_used * s.link.rate * S / wire,
            "pcie": math.ceil(links_used / p.nic.ports) * pcie_rate_by_hand(p.nic.pcie) * S
            / pcie_read_bytes_by_hand(S, p.nic.pcie, wrs),
            "dram": p.memory.dram_bandwidth / (1 + per_copy * cpu_copies + (0 if w.page_cache_hit else 1)),
            "cpu-serving": min(w.io_cores, w.connections) * S / serving,
            "cpu-all": p.cpu.cores * S / (serving + workers),
            "pipeline": w.connections * w.outstanding_per_connection * S / (w.rtt + serving + workers + wire / s.link.rate)}
    if workers:
        caps["cpu-workers"] = w.async_workers * S / workers
    return caps


def _binding(caps: dict) -> str:
    return min(caps, key=caps.get)


def _row(ev, path: str, size: float, **axes):
    for i, r in enumerate(report.rows(ev)):
        if r["copy_path"] == path and r["io_size_bytes"] == size and all(
                r[schema.unit_key(k)] == v for k, v in axes.items()):
            return ev, i, r
    raise AssertionError(f"no row {path} {size} {axes}")


# --- framing, by hand -----------------------------------------------------------------------

def test_roce_path_mtu_from_ethernet_mtu():
    assert resources.roce_path_mtu(1500) == 1024
    assert resources.roce_path_mtu(9000) == 4096
    assert resources.roce_path_mtu(4200) == 4096
    # iboe_get_mtu subtracts 96 B (GRH 40, UDP 8, BTH 12, XRC 4, AtomicETH 28, ICRC 4): 4190 - 96 < 4096
    assert resources.roce_path_mtu(4190) == 2048
    assert resources.roce_path_mtu(4192) == 4096
    assert resources.roce_path_mtu(2000) == 1024


def test_roce_wire_bytes_1mib_read():
    # 1 MiB in 1024 packets of 1024 B, 82 B each + RETH 16; response SEND 104 B in one packet + 82
    wire = resources.smb_wire_bytes_per_io(MiB, 0, 1500, 1)
    assert wire == MiB + 1024 * 82 + 16 + 104 + 82


def test_tcp_wire_bytes():
    # MSS 1500-20-20-12 = 1448; stream = 64 KiB + 4 + 64 + 16; per segment 90 B on the wire
    stream = 65536 + 84
    segs = math.ceil(stream / 1448)
    assert resources.smb_wire_bytes_per_io(65536, 2, 1500, 1) == stream + segs * 90


def test_pcie_gen5_x16_rate_and_tlps():
    assert resources.pcie_rate(5, 16) == pytest.approx(32e9 * 16 * 128 / 130 / 8)
    # 1 MiB in 64 B completions of 20 B overhead + 2 descriptors of 64+20
    assert resources.pcie_bytes_per_io(MiB, 64, 256, 20, 2) == MiB + (MiB // 64) * 20 + 2 * 84
    # a partial completion is a whole TLP: 1000 B in 16 completions (15 x 64 + 40)
    assert resources.pcie_bytes_per_io(1000, 64, 256, 20, 0) == 1000 + 16 * 20


def test_copy_seconds_regimes():
    # cold source: all at the DRAM rate; warm buffer: first 2 MiB at cache rate, rest at DRAM rate
    assert resources.copy_seconds(8 * MiB, 25e9, 5e9, 2 * MiB, True) == pytest.approx(8 * MiB / 5e9)
    assert resources.copy_seconds(8 * MiB, 25e9, 5e9, 2 * MiB, False) == pytest.approx(2 * MiB / 25e9 + 6 * MiB / 5e9)
    assert resources.copy_seconds(MiB, 25e9, 5e9, 2 * MiB, False) == pytest.approx(MiB / 25e9)


def test_dram_bytes_per_path():
    # NIC 1x; CPU copy 3x (write-allocate) or 2x (non-temporal); DMA copy 2x; page-cache fill 1x
    assert resources.dram_bytes_per_payload_byte(0, 0, 0, 1) == 1
    assert resources.dram_bytes_per_payload_byte(1, 0, 0, 1) == 4
    assert resources.dram_bytes_per_payload_byte(1, 0, 1, 1) == 3
    assert resources.dram_bytes_per_payload_byte(0, 1, 0, 1) == 3
    assert resources.dram_bytes_per_payload_byte(2, 0, 0, 0) == 8


# --- each copy path's demands, by hand -------------------------------------------------------

@pytest.fixture(scope="module")
def smbd():
    return schema.load_scenario("smbdirect-2x200g")


@pytest.fixture(scope="module")
def tcp():
    return schema.load_scenario("smb-tcp-100g")


def test_cpu_copy_serving_time_by_hand(smbd):
    ev, i, r = _row(evaluate_scenario(smbd), "cpu-copy", 8 * MiB)
    c = smbd.platform.cpu
    t = c.smb_request_time + 1 * c.syscall_time + 2 * c.rdma_wr_time + cold_copy_by_hand(8 * MiB, c)
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(t)
    caps = smbd_capacities_by_hand(smbd, 8 * MiB, t, cpu_copies=1, wrs=2)
    assert r["capacity_cpu_serving_bytes_per_s"] == pytest.approx(4 * 8 * MiB / t)   # 4 serving threads
    assert r["throughput_bytes_per_s"] == pytest.approx(min(caps.values()))
    assert r["binding"] == _binding(caps)                  # cpu-serving on the shipped Xeon profile
    assert ev.result.dram_bytes_per_byte.flat[i] == 1 + (2 if c.nontemporal_copy else 3)


def test_zero_copy_demands_by_hand(smbd):
    ev, i, r = _row(evaluate_scenario(smbd), "zero-copy", MiB)
    c = smbd.platform.cpu
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(c.smb_request_time + 4 * c.rdma_wr_time)
    assert ev.result.dram_bytes_per_byte.flat[i] == 1
    assert ev.result.worker_seconds_per_io.flat[i] == 0


def test_zero_copy_reaches_line_rate(smbd):
    ev, i, r = _row(evaluate_scenario(smbd), "zero-copy", 8 * MiB)
    c = smbd.platform.cpu
    caps = smbd_capacities_by_hand(smbd, 8 * MiB, c.smb_request_time + 4 * c.rdma_wr_time, cpu_copies=0, wrs=4)
    line = smbd.link.count * smbd.link.rate * 8 * MiB / roce_wire_by_hand(8 * MiB, smbd.link.mtu)
    assert caps["links"] == line and r["capacity_links_bytes_per_s"] == pytest.approx(line)
    assert line / 1e9 == pytest.approx(46.29, abs=0.01)        # 2 x 200 Gbit/s at MTU 1500: the scenario alone
    assert r["binding"] == _binding(caps) and r["throughput_bytes_per_s"] == pytest.approx(min(caps.values()))


def test_async_workers_moves_the_copy(smbd):
    ev, i, r = _row(evaluate_scenario(smbd), "async-workers", 8 * MiB)
    c = smbd.platform.cpu
    assert ev.result.worker_seconds_per_io.flat[i] == pytest.approx(cold_copy_by_hand(8 * MiB, c))
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(
        c.smb_request_time + c.syscall_time + 2 * c.rdma_wr_time + c.async_handoff_time)
    assert ev.result.dram_bytes_per_byte.flat[i] == 1 + (2 if c.nontemporal_copy else 3)   # the copy moved, not removed


def test_dma_offload_async_memcpy_cannot_reach_dsa(smbd):
    ev, i, r = _row(evaluate_scenario(smbd), "dma-offload", MiB)
    assert r["throughput_bytes_per_s"] == 0 and r["binding"] == "dma (none reachable)"


def test_dma_offload_chan_descriptors_by_hand(smbd):
    ev, i, r = _row(evaluate_scenario(smbd), "dma-offload-chan", MiB)
    dsa = smbd.platform.dma[0]
    c = smbd.platform.cpu
    descriptors = MiB // 4096
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(
        c.smb_request_time + c.syscall_time + 2 * c.rdma_wr_time + descriptors * dsa.descriptor_cpu_time)
    assert ev.result.dram_bytes_per_byte.flat[i] == 3
    assert r["dma_engines_busy"] == pytest.approx(r["throughput_bytes_per_s"] / one_engine_by_hand(dsa))
    # async_memcpy / a channel take one 4 KiB page per descriptor: 4097 B is two descriptors
    ev = evaluate_grid(smbd, {"workload.io_size": [4096.0, 4097.0]}, paths=[3])
    extra = ev.result.serving_seconds_per_io[1] - ev.result.serving_seconds_per_io[0]
    assert extra == pytest.approx(dsa.descriptor_cpu_time)


def test_dma_offload_reaches_ptdma_only_through_a_dedicated_channel():
    # PTDMA, like DSA, marks its channels DMA_PRIVATE: async_memcpy reaches no engine on either
    # platform; dma_request_channel reaches the PTDMA engines at 4096 B / (4096 B / rate + descriptor time)
    # each (the shipped profile: one engine, 4096 B / (4096 B / 10 GB/s + 0.1 us) = 8.03 GB/s)
    s = schema.load_scenario("smbdirect-2x200g", platform="epyc-9654-cx7")
    (ptdma,) = s.platform.dma
    ev = evaluate_scenario(s)
    _, _, r = _row(ev, "dma-offload", MiB)
    assert r["throughput_bytes_per_s"] == 0 and r["binding"] == "dma (none reachable)"
    _, _, r = _row(ev, "dma-offload-chan", MiB)
    dma = ptdma.count * one_engine_by_hand(ptdma)
    assert r["capacity_dma_bytes_per_s"] == pytest.approx(dma)
    line = s.link.count * s.link.rate * MiB / roce_wire_by_hand(MiB, s.link.mtu)
    if dma < line:                                   # the engine binds below the line rate
        assert r["binding"] == "dma" and r["throughput_bytes_per_s"] == pytest.approx(dma)


def test_tcp_paths_by_hand(tcp):
    ev = evaluate_scenario(tcp)
    c = tcp.platform.cpu
    S = MiB
    units = S / tcp.workload.gso_size
    line = tcp.link.rate * S / tcp_wire_by_hand(S, tcp.link.mtu)
    _, i, r = _row(ev, "cpu-copy", S, **{"workload.connections": 1.0})
    # cold page cache -> buffer at the DRAM rate; the buffer (1 MiB, within cache_per_core) -> skb at the cache rate
    assert S <= c.cache_per_core
    t = c.smb_request_time + 2 * c.syscall_time + cold_copy_by_hand(S, c) + S / c.copy_rate_cache + units * c.tcp_segment_time
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(t)
    assert r["throughput_bytes_per_s"] == pytest.approx(min(S / t, line))    # one connection, one serving core
    _, i, r = _row(ev, "splice", S, **{"workload.connections": 1.0})
    t = c.smb_request_time + (1 + 2 * 16) * c.syscall_time + units * c.tcp_segment_time
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(t)
    assert ev.result.dram_bytes_per_byte.flat[i] == 1
    _, i, r = _row(ev, "send-zc", S, **{"workload.connections": 1.0})
    # send-zc pins the buffer's pages for the NIC to read them
    t = c.smb_request_time + 3 * c.syscall_time + cold_copy_by_hand(S, c) + pins_by_hand(S, c) + units * c.tcp_segment_time
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(t)
    # DRAM per payload byte: NIC 1 + one copy, 3 with write-allocate (send-zc: 4); two copies (cpu-copy: 7)
    per_copy = 2 if c.nontemporal_copy else 3
    assert ev.result.dram_bytes_per_byte.flat[i] == 1 + per_copy
    _, i, r = _row(ev, "cpu-copy", S, **{"workload.connections": 1.0})
    assert ev.result.dram_bytes_per_byte.flat[i] == 1 + 2 * per_copy


def test_tcp_checksum_cost_when_not_offloaded(tcp):
    on = evaluate_scenario(tcp)
    off = evaluate_with_overrides(tcp, {"workload.checksum_offload": 0})
    d = off.result.serving_seconds_per_io - on.result.serving_seconds_per_io
    assert np.allclose(d, on.result.io_size / tcp.platform.cpu.tcp_checksum_rate)


def test_tcp_multichannel_reaches_the_link(tcp):
    ev = evaluate_scenario(tcp)
    _, i, r = _row(ev, "cpu-copy", MiB, **{"workload.connections": 4.0})
    line = tcp.link.count * tcp.link.rate * MiB / tcp_wire_by_hand(MiB, tcp.link.mtu)    # 11.8 GB/s at 100 Gbit/s
    assert r["capacity_links_bytes_per_s"] == pytest.approx(line)
    serving = 4 * MiB / ev.result.serving_seconds_per_io.flat[i]
    if serving > line:                               # four serving cores outrun the one link
        assert r["binding"] == "links" and r["throughput_bytes_per_s"] == pytest.approx(line)


# --- invariants ------------------------------------------------------------------------------

def test_throughput_never_exceeds_any_capacity(smbd, tcp):
    for s in (smbd, tcp, schema.load_scenario("smbdirect-2x200g", platform="epyc-9654-cx7")):
        r = evaluate_scenario(s).result
        assert np.all(r.throughput <= r.capacity * (1 + 1e-12))
        assert np.all(r.throughput >= 0)
        assert np.all(r.throughput == r.capacity.min(axis=0))


def test_more_cores_never_lower_throughput(smbd, tcp):
    for s in (smbd, tcp):
        grid = {"workload.io_size": [64 * 1024, MiB, 8 * MiB], "workload.io_cores": [1, 2, 4, 8, 16, 32],
                "workload.connections": [1, 4, 16], "workload.async_workers": [1, 4, 16]}
        r = evaluate_grid(s, grid).result
        X = r.throughput.reshape(len(s.copy_paths), 3, 6, 3, 3)
        assert np.all(np.diff(X, axis=2) >= -1e-6)
        assert np.all(np.diff(X, axis=4) >= -1e-6)


def test_more_links_never_lower_throughput(smbd):
    r = evaluate_grid(smbd, {"workload.io_size": [MiB], "link.count": [1, 2, 4, 8]}).result
    assert np.all(np.diff(r.throughput.reshape(len(smbd.copy_paths), 4), axis=1) >= 0)


def test_utilisation_of_binding_resource_is_one(smbd):
    r = evaluate_scenario(smbd).result
    ok = r.throughput > 0
    u = np.take_along_axis(r.utilisation, r.binding[None], 0)[0]
    assert np.allclose(u[ok], 1.0)


def test_links_one_line_change_scales(smbd):
    # 2 x 200 Gbit/s and 4 x 100 Gbit/s: same 400 Gbit/s, same framing, the same link capacity
    # (the throughput may differ: four links need twice the NICs, so twice the PCIe)
    links = RESOURCES.index("links")
    base = evaluate_grid(smbd, {"workload.io_size": [8 * MiB]}, paths=[4]).result.capacity[links][0]
    import dataclasses
    four = dataclasses.replace(smbd, link=dataclasses.replace(smbd.link, count=4, rate=smbd.link.rate / 2))
    r4 = evaluate_grid(four, {"workload.io_size": [8 * MiB]}, paths=[4]).result.capacity[links][0]
    assert r4 == pytest.approx(base)


def test_target_requirements(smbd):
    ev = evaluate_scenario(smbd)
    req = requirements(ev, 46e9)
    rows = report.rows(ev)
    c = smbd.platform.cpu
    S = 8 * MiB
    per_link = smbd.link.rate * S / roce_wire_by_hand(S, smbd.link.mtu)
    seen = set()
    for i, r in enumerate(rows):
        if r["copy_path"] == "cpu-copy" and r["io_size_bytes"] == S:
            # Xeon: 46 GB/s x (6.25 us + 8388608 B / 6.17 GB/s) / 8388608 B = 7.49 -> 8 serving threads
            t = c.smb_request_time + c.syscall_time + 2 * c.rdma_wr_time + cold_copy_by_hand(S, c)
            assert req.serving_cores[i] == math.ceil(46e9 * t / S)
            assert req.links[i] == math.ceil(46e9 / per_link)
            assert req.feasible[i] == (req.serving_cores[i] <= c.cores and 46e9 <= r["capacity_dram_bytes_per_s"])
            seen.add("cpu-copy")
        if r["copy_path"] == "dma-offload":
            assert not req.feasible[i] and "async_memcpy" in req.blocker[i]
            seen.add("dma-offload")
        if r["copy_path"] == "zero-copy" and r["io_size_bytes"] == S:
            assert req.serving_cores[i] == math.ceil(46e9 * (c.smb_request_time + 4 * c.rdma_wr_time) / S)
            seen.add("zero-copy")
    assert seen == {"cpu-copy", "dma-offload", "zero-copy"}


def test_builtin_rows_cover_required_paths():
    names = copy_paths.builtin_names()
    for n in ("cpu-copy", "async-workers", "dma-offload", "send-zc", "splice", "zero-copy"):
        assert n in names
    assert copy_paths.builtin("cpu-copy", "tcp").copies != copy_paths.builtin("cpu-copy", "smbdirect").copies


def test_resource_names_index_the_capacity_rows(smbd):
    # RESOURCES names the rows of Result.capacity: each named row holds that resource's capacity,
    # computed here by hand (zero-copy, 1 MiB: no copy, 4 work requests)
    ev = evaluate_grid(smbd, {"workload.io_size": [MiB]}, paths=[[p.name for p in smbd.copy_paths].index("zero-copy")])
    c = smbd.platform.cpu
    caps = smbd_capacities_by_hand(smbd, MiB, c.smb_request_time + 4 * c.rdma_wr_time, cpu_copies=0, wrs=4)
    for name, cap in caps.items():
        assert ev.result.capacity[RESOURCES.index(name), 0] == pytest.approx(cap, rel=1e-9), name
    assert np.isinf(ev.result.capacity[RESOURCES.index("cpu-workers"), 0])      # no worker copies
    assert np.isinf(ev.result.capacity[RESOURCES.index("dma"), 0])              # no DMA copies
    assert RESOURCES[ev.result.binding[0]] == _binding(caps)


def test_write_uses_posted_writes_on_pcie(smbd):
    import dataclasses
    w = dataclasses.replace(smbd, workload=dataclasses.replace(smbd.workload, operation="write"))
    S = MiB
    r_read = evaluate_grid(smbd, {"workload.io_size": [S]}, paths=[4]).result
    r_write = evaluate_grid(w, {"workload.io_size": [S]}, paths=[4]).result
    pcie = smbd.platform.nic.pcie
    nics = math.ceil(min(smbd.link.count, smbd.workload.connections) / smbd.platform.nic.ports)
    rate = nics * pcie_rate_by_hand(pcie)
    # read (Xeon): 64 B completions + 20 B; write: 256 B posted writes + 24 B (64-bit address); 4 WQEs each
    wqes = 4 * (WQE + pcie.tlp_overhead)
    read = S + math.ceil(S / min(pcie.read_completion, pcie.max_payload)) * pcie.tlp_overhead + wqes
    write = S + math.ceil(S / pcie.max_payload) * (pcie.tlp_overhead + 4) + wqes
    assert r_read.capacity[1][0] == pytest.approx(rate * S / read)
    assert r_write.capacity[1][0] == pytest.approx(rate * S / write)
    if pcie.read_completion < pcie.max_payload:
        assert r_write.capacity[1][0] > r_read.capacity[1][0]


def test_grid_over_cap_is_refused(smbd):
    from scenarios.errors import InputError
    with pytest.raises(InputError) as info:
        evaluate_grid(smbd, {"workload.io_size": np.arange(1, 1001) * 4096.0, "cpu.cores": np.arange(1, 1001)})
    assert "1,000,000" in info.value.cause


def test_four_links_need_two_nics(smbd):
    import dataclasses
    s = dataclasses.replace(smbd, link=dataclasses.replace(smbd.link, count=4, rate=12.5e9))
    one = evaluate_grid(smbd, {"workload.io_size": [MiB]}, paths=[4]).result
    four = evaluate_grid(s, {"workload.io_size": [MiB]}, paths=[4]).result
    ports = smbd.platform.nic.ports                                        # Xeon profile: 2 NICs of 2 ports
    assert four.capacity[1][0] == pytest.approx(math.ceil(4 / ports) / math.ceil(2 / ports) * one.capacity[1][0])


def test_target_counts_nics_and_outstanding(smbd):
    S = 8 * MiB
    ev = evaluate_grid(smbd, {"workload.io_size": [S]}, paths=[4])
    req = requirements(ev, 60e9)
    c, pcie, ports = smbd.platform.cpu, smbd.platform.nic.pcie, smbd.platform.nic.ports
    wire = roce_wire_by_hand(S, smbd.link.mtu)
    links = math.ceil(60e9 / (smbd.link.rate * S / wire))
    per_nic = pcie_rate_by_hand(pcie) * S / pcie_read_bytes_by_hand(S, pcie, 4)
    assert req.links[0] == links and req.nics[0] == max(math.ceil(links / ports), math.ceil(60e9 / per_nic))
    # Xeon: R = 10 us + 7 us (request + 4 WRs) + 9060554 B / 25 GB/s = 379.422 us; 60 GB/s x R / 8 MiB = 2.71 -> 3
    R = smbd.workload.rtt + c.smb_request_time + 4 * c.rdma_wr_time + wire / smbd.link.rate
    assert ev.result.latency_seconds[0] == pytest.approx(R, rel=1e-9)
    assert req.outstanding_ios[0] == math.ceil(60e9 * R / S)
    assert req.worker_cores[0] == 0 and not np.signbit(req.worker_cores[0])
    # links of half the rate: twice the links, so the ports (not PCIe) set the NICs (Xeon: 6 links -> 3 NICs)
    import dataclasses
    half = dataclasses.replace(smbd, link=dataclasses.replace(smbd.link, count=4, rate=smbd.link.rate / 2))
    req = requirements(evaluate_grid(half, {"workload.io_size": [S]}, paths=[4]), 60e9)
    links = math.ceil(60e9 / (half.link.rate * S / wire))
    assert req.links[0] == links and req.nics[0] == max(math.ceil(links / ports), math.ceil(60e9 / per_nic))


def test_net_dma_reaches_no_engine(tmp_path):
    text = (schema.PACKAGE_DIR / "smbdirect-2x200g.toml").read_text().replace('"zero-copy"]', '"zero-copy", "netdma"]')
    text += ('\n[[copy_path]]\nname = "netdma"\ntransports = ["smbdirect"]\n'
             'copies = [{who = "dma", source = "page-cache"}]\ndma_api = "net_dma"\n')
    f = tmp_path / "s.toml"
    f.write_text(text)
    for plat in schema.builtin_platforms():
        s = schema.load_scenario(f, platform=plat)
        ev = evaluate_grid(s, {"workload.io_size": [MiB]}, paths=[len(s.copy_paths) - 1])
        assert ev.result.throughput[0] == 0 and RESOURCES[ev.result.binding[0]] == "dma"


def test_page_cache_miss_adds_dram_traffic(smbd):
    ev = evaluate_grid(smbd, {"workload.io_size": [MiB], "workload.page_cache_hit": [1, 0]})
    bpb = ev.result.dram_bytes_per_byte.reshape(len(smbd.copy_paths), 2)
    assert np.all(bpb[:, 1] == bpb[:, 0] + 1)


def test_pipeline_littles_law_by_hand(smbd):
    ev = evaluate_grid(smbd, {"workload.io_size": [4096.0, MiB], "workload.connections": [1],
                              "workload.outstanding_per_connection": [1]}, paths=[4])
    r = ev.result
    c = smbd.platform.cpu
    # zero-copy: R = rtt + request + 4 WRs + wire / link rate; Xeon, 10 us rtt, 25 GB/s:
    # 4 KiB: wire 4096 + 4 x 82 + 16 + 186 = 4626 B -> R = 17.18504 us; 1 MiB: 1132746 B -> R = 62.30984 us
    assert roce_wire_by_hand(4096, 1500) == 4626 and roce_wire_by_hand(MiB, 1500) == 1132746
    for k, S in enumerate((4096.0, MiB)):
        R = smbd.workload.rtt + c.smb_request_time + 4 * c.rdma_wr_time + roce_wire_by_hand(S, smbd.link.mtu) / smbd.link.rate
        assert r.latency_seconds[k] == pytest.approx(R, rel=1e-9)
        assert r.capacity[RESOURCES.index("pipeline")][k] == pytest.approx(1 * S / R, rel=1e-9)    # N = 1 x 1
    # one I/O in flight of 4 KiB: the pipeline binds, far below the link
    assert RESOURCES[r.binding[0]] == "pipeline" and r.throughput[0] < 1e9


def test_pipeline_dma_latency_by_hand(smbd):
    # dma-offload-chan, 1 MiB, one I/O in flight. On the Xeon profile: R = rtt 10 us
    # + serving 5 + 0.25 + 2 x 0.5 + 256 descriptors x 0.3 us = 83.05 us
    # + wire (1048576 + 1024 x 82 + 16 + 104 + 82 = 1132746 B) / 25 GB/s = 45.30984 us
    # + copy on one DSA 1048576 B / 30 GB/s = 34.95253 us + completion 2 us  = 175.31237 us
    ev = evaluate_grid(smbd, {"workload.io_size": [MiB], "workload.connections": [1],
                              "workload.outstanding_per_connection": [1]}, paths=[3])
    assert ev.table.names[3] == "dma-offload-chan"
    c, (dsa,) = smbd.platform.cpu, smbd.platform.dma
    serving = c.smb_request_time + c.syscall_time + 2 * c.rdma_wr_time + MiB / 4096 * dsa.descriptor_cpu_time
    R = (smbd.workload.rtt + serving + roce_wire_by_hand(MiB, smbd.link.mtu) / smbd.link.rate
         + MiB / one_engine_by_hand(dsa) + dsa.completion_latency)
    assert ev.result.latency_seconds[0] == pytest.approx(R, rel=1e-9)
    assert ev.result.capacity[RESOURCES.index("pipeline")][0] == pytest.approx(MiB / R, rel=1e-9)


def test_small_io_is_per_io_bound(smbd):
    ev = evaluate_grid(smbd, {"workload.io_size": [4096.0, 8 * MiB]}, paths=[4])
    r = ev.result
    c = smbd.platform.cpu
    for k, S in enumerate((4096.0, 8 * MiB)):
        caps = smbd_capacities_by_hand(smbd, S, c.smb_request_time + 4 * c.rdma_wr_time, cpu_copies=0, wrs=4)
        assert RESOURCES[r.binding[k]] == _binding(caps)
        assert r.throughput[k] == pytest.approx(min(caps.values()))
    assert RESOURCES[r.binding[0]] in ("cpu-serving", "pipeline")      # per-I/O costs bind a 4 KiB I/O
    assert r.throughput[0] < r.throughput[1]


# --- the field-report figures, computed on paper (docs/model.md) -------------------------------

def test_field_report_figures_by_hand(smbd, tcp):
    # The figures docs/model.md quotes, each from its equation and the loaded profile's figures; the
    # comments give the arithmetic on the shipped Xeon profile.
    ev = evaluate_scenario(smbd)
    c, pcie = smbd.platform.cpu, smbd.platform.nic.pcie
    S = 8 * MiB
    # zero-copy, 8 MiB: 2 x 25 GB/s x 8388608 / (8388608 + 8192 x 82 + RETH 16 + response 104 + 82) = 46.2919 GB/s
    _, i, r = _row(ev, "zero-copy", S)
    line = 2 * 25e9 * S / (S + 8192 * 82 + 16 + 104 + 82)
    assert line == pytest.approx(46.2919e9, rel=1e-5)            # the scenario's links alone: no profile figure
    assert r["capacity_links_bytes_per_s"] == pytest.approx(line)
    # PCIe Gen5 x16: 32 GT/s x 16 x 128/130 / 8 = 63.0154 GB/s; 64 B completions + 20 B, 4 WQEs of 64 + 20 B
    # -> 48.0103 GB/s: links bind, PCIe next
    nics = math.ceil(min(smbd.link.count, smbd.workload.connections) / smbd.platform.nic.ports)
    pcie_cap = nics * pcie_rate_by_hand(pcie) * S / pcie_read_bytes_by_hand(S, pcie, 4)
    assert r["capacity_pcie_bytes_per_s"] == pytest.approx(pcie_cap)
    if pcie_cap > line:
        assert r["binding"] == "links" and r["throughput_bytes_per_s"] == pytest.approx(line)
    # cpu-copy, 8 MiB, 4 serving threads: 4 x 8388608 / (5 + 0.25 + 2 x 0.5 us + 8388608 / 6.17 GB/s) = 24.5671 GB/s
    _, i, r = _row(ev, "cpu-copy", S)
    serving = 4 * S / (c.smb_request_time + c.syscall_time + 2 * c.rdma_wr_time + cold_copy_by_hand(S, c))
    assert r["capacity_cpu_serving_bytes_per_s"] == pytest.approx(serving)
    if serving < line:
        assert r["throughput_bytes_per_s"] == pytest.approx(serving)
    # TCP, one connection, cpu-copy 1 MiB: 5 + 2 x 0.25 us + 169.947 us (cold, 6.17 GB/s)
    # + 40.801 us (warm buffer -> skb, 25.7 GB/s) + 16 GSO units x 1.25 us = 236.248 us -> 4.43845 GB/s
    ct = tcp.platform.cpu
    _, i, r = _row(evaluate_scenario(tcp), "cpu-copy", MiB, **{"workload.connections": 1.0})
    t = (ct.smb_request_time + 2 * ct.syscall_time + cold_copy_by_hand(MiB, ct) + MiB / ct.copy_rate_cache
         + MiB / tcp.workload.gso_size * ct.tcp_segment_time)
    assert r["capacity_cpu_serving_bytes_per_s"] == pytest.approx(MiB / t)
    # 4 connections: the link, 12.5 GB/s x 1448 / 1538 less the 84 B of SMB headers per I/O = 11.7685 GB/s
    _, i, r = _row(evaluate_scenario(tcp), "splice", S, **{"workload.connections": 4.0})
    line = 12.5e9 * S / (S + 84 + math.ceil((S + 84) / 1448) * 90)
    assert line == pytest.approx(11.7685e9, rel=1e-4)             # the scenario's link alone
    assert r["capacity_links_bytes_per_s"] == pytest.approx(line)
    if r["capacity_cpu_serving_bytes_per_s"] > line:
        assert r["binding"] == "links" and r["throughput_bytes_per_s"] == pytest.approx(line)


# --- invariants over random points (property style) --------------------------------------------

def _random_points(s, rng, n):
    from models.sweep import base_params
    p = {k: np.full(n, v) for k, v in base_params(s).items()}
    p["path_index"] = rng.integers(0, len(s.copy_paths), n)
    p["workload.io_size"] = np.exp(rng.uniform(np.log(4096), np.log(8 * MiB), n)).round()
    for key, lo, hi in (("cpu.copy_rate_dram", 1e9, 20e9), ("cpu.copy_rate_cache", 10e9, 60e9),
                        ("memory.dram_bandwidth", 20e9, 500e9), ("link.rate", 1.25e9, 50e9),
                        ("workload.rtt", 1e-6, 1e-3), ("cpu.smb_request_time", 1e-7, 5e-5)):
        p[key] = rng.uniform(lo, hi, n)
    for key, lo, hi in (("link.count", 1, 8), ("workload.connections", 1, 32), ("workload.io_cores", 1, 32),
                        ("workload.async_workers", 1, 32), ("workload.outstanding_per_connection", 1, 64),
                        ("cpu.cores", 1, 128), (f"dma.{s.platform.dma[0].name}.count", 0, 8)):
        p[key] = rng.integers(lo, hi + 1, n).astype(float)
    p["link.mtu"] = rng.choice([1500.0, 4200.0, 9000.0], n)
    p["workload.page_cache_hit"] = rng.integers(0, 2, n).astype(float)
    p["workload.checksum_offload"] = rng.integers(0, 2, n).astype(float)
    return p


@pytest.mark.parametrize("name, platform", [("smbdirect-2x200g", None), ("smbdirect-2x200g", "epyc-9654-cx7"),
                                            ("smb-tcp-100g", None)])
def test_invariants_on_random_points(name, platform):
    from models.bottleneck import evaluate
    from models.sweep import _engine_names, _paths
    s = schema.load_scenario(name, platform=platform)
    rng = np.random.default_rng(20261130)
    p = _random_points(s, rng, 20_000)
    table, engines = _paths(s), _engine_names(s)
    r = evaluate(p, table, engines)
    X = r.throughput
    assert np.all(np.isfinite(X)) and np.all(X >= 0)
    assert np.all(X <= r.capacity * (1 + 1e-12))                      # never above any capacity
    # never above the raw physical limits, computed here without the model's framing
    assert np.all(X <= p["link.count"] * p["link.rate"])
    assert np.all(X <= p["memory.dram_bandwidth"])
    nics = np.ceil(np.minimum(p["link.count"], p["workload.connections"]) / s.platform.nic.ports)
    pcie = s.platform.nic.pcie
    assert np.all(X <= nics * PCIE_GTS[pcie.generation] * pcie.lanes / 8)         # raw signalling, no encoding
    # more of any core count, more links, more credits never lower the throughput
    for key, extra in (("workload.io_cores", 7), ("workload.async_workers", 7), ("cpu.cores", 16),
                       ("workload.connections", 3), ("link.count", 1), ("workload.outstanding_per_connection", 16)):
        q = dict(p)
        q[key] = p[key] + extra
        assert np.all(evaluate(q, table, engines).throughput >= X * (1 - 1e-9)), key


def test_target_needs_whole_dma_engines_and_names_the_shortfall(smbd):
    ev = evaluate_grid(smbd, {"workload.io_size": [8 * MiB]}, paths=[3])      # dma-offload-chan (Xeon: 4 DSA)
    assert ev.table.names[3] == "dma-offload-chan"
    (dsa,) = smbd.platform.dma
    one = one_engine_by_hand(dsa)                                           # Xeon: 30 GB/s
    req = requirements(ev, 1.5 * one)                                       # 1.5 engines' worth -> 2 engines
    assert req.dma_engines[0] == 2
    dram = smbd.platform.memory.dram_bandwidth / 3                          # NIC 1 + DMA copy 2 bytes per byte
    assert req.feasible[0] == (2 <= dsa.count and 1.5 * one <= dram)
    req = requirements(ev, (dsa.count + 0.5) * one)                         # one engine more than there are
    assert req.dma_engines[0] == dsa.count + 1 and not req.feasible[0]
    assert req.blocker[0] == f"needs {dsa.count + 1} DMA engines, {dsa.count} reachable"


def test_target_adds_nics_when_pcie_is_short(smbd):
    # PCIe Gen3 x16: 8 GT/s x 16 x 128/130 / 8 = 15.754 GB/s; on the Xeon profile 8 MiB in 64 B completions
    # + 4 WQEs: x 8388608 / 11010384 = 12.0025 GB/s per NIC; 46 GB/s needs 4 NICs although 2 links fit on one
    S = 8 * MiB
    ev = evaluate_with_overrides(smbd, {"pcie.generation": 3}, grid={"workload.io_size": [S]})
    i = ev.table.names.index("zero-copy")
    pcie = smbd.platform.nic.pcie
    per_nic = 8e9 * pcie.lanes * 128 / 130 / 8 * S / pcie_read_bytes_by_hand(S, pcie, 4)
    assert ev.result.pcie_capacity_per_nic[i] == pytest.approx(per_nic, rel=1e-9)
    req = requirements(ev, 46e9)
    links = math.ceil(46e9 / (smbd.link.rate * S / roce_wire_by_hand(S, smbd.link.mtu)))
    assert req.links[i] == links
    assert req.nics[i] == max(math.ceil(links / smbd.platform.nic.ports), math.ceil(46e9 / per_nic))
    assert req.nics[i] > math.ceil(links / smbd.platform.nic.ports)          # PCIe, not ports, sets the NICs
