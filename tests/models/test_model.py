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
    t = c.smb_request_time + 1 * c.syscall_time + 2 * c.rdma_wr_time + 8 * MiB / c.copy_rate_dram
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(t)
    assert r["throughput_bytes_per_s"] == pytest.approx(4 * 8 * MiB / t)   # 4 serving threads bind
    assert r["binding"] == "cpu-serving"
    assert ev.result.dram_bytes_per_byte.flat[i] == 4


def test_zero_copy_demands_by_hand(smbd):
    ev, i, r = _row(evaluate_scenario(smbd), "zero-copy", MiB)
    c = smbd.platform.cpu
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(c.smb_request_time + 4 * c.rdma_wr_time)
    assert ev.result.dram_bytes_per_byte.flat[i] == 1
    assert ev.result.worker_seconds_per_io.flat[i] == 0


def test_zero_copy_reaches_line_rate(smbd):
    ev, i, r = _row(evaluate_scenario(smbd), "zero-copy", 8 * MiB)
    line = 2 * 25e9 * 8 * MiB / resources.smb_wire_bytes_per_io(8 * MiB, 0, 1500, 1)
    assert r["binding"] == "links"
    assert r["throughput_bytes_per_s"] == pytest.approx(line)
    assert r["throughput_bytes_per_s"] / 1e9 == pytest.approx(46.29, abs=0.01)


def test_async_workers_moves_the_copy(smbd):
    ev, i, r = _row(evaluate_scenario(smbd), "async-workers", 8 * MiB)
    c = smbd.platform.cpu
    assert ev.result.worker_seconds_per_io.flat[i] == pytest.approx(8 * MiB / c.copy_rate_dram)
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(
        c.smb_request_time + c.syscall_time + 2 * c.rdma_wr_time + c.async_handoff_time)
    assert ev.result.dram_bytes_per_byte.flat[i] == 4          # the copy moved, not removed


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
    assert r["dma_engines_busy"] == pytest.approx(r["throughput_bytes_per_s"] / dsa.rate)
    # async_memcpy / a channel take one 4 KiB page per descriptor: 4097 B is two descriptors
    ev = evaluate_grid(smbd, {"workload.io_size": [4096.0, 4097.0]}, paths=[3])
    extra = ev.result.serving_seconds_per_io[1] - ev.result.serving_seconds_per_io[0]
    assert extra == pytest.approx(dsa.descriptor_cpu_time)


def test_dma_offload_reaches_ptdma_only_through_a_dedicated_channel():
    # PTDMA, like DSA, marks its channels DMA_PRIVATE: async_memcpy reaches no engine on either
    # platform; dma_request_channel reaches one PTDMA at 4096 B / (4096 B / 10 GB/s + 0.1 us)
    s = schema.load_scenario("smbdirect-2x200g", platform="epyc-9654-cx7")
    ev = evaluate_scenario(s)
    _, _, r = _row(ev, "dma-offload", MiB)
    assert r["throughput_bytes_per_s"] == 0 and r["binding"] == "dma (none reachable)"
    _, _, r = _row(ev, "dma-offload-chan", MiB)
    assert r["binding"] == "dma"
    assert r["throughput_bytes_per_s"] == pytest.approx(4096 / (4096 / 10e9 + 0.1e-6))   # 8.03 GB/s


def test_tcp_paths_by_hand(tcp):
    ev = evaluate_scenario(tcp)
    c = tcp.platform.cpu
    S = MiB
    units = S / 65536
    _, i, r = _row(ev, "cpu-copy", S, **{"workload.connections": 1.0})
    t = c.smb_request_time + 2 * c.syscall_time + S / c.copy_rate_dram + S / c.copy_rate_cache + units * c.tcp_segment_time
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(t)
    assert r["throughput_bytes_per_s"] == pytest.approx(S / t)
    _, i, r = _row(ev, "splice", S, **{"workload.connections": 1.0})
    t = c.smb_request_time + (1 + 2 * 16) * c.syscall_time + units * c.tcp_segment_time
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(t)
    assert ev.result.dram_bytes_per_byte.flat[i] == 1
    _, i, r = _row(ev, "send-zc", S, **{"workload.connections": 1.0})
    t = c.smb_request_time + 3 * c.syscall_time + S / c.copy_rate_dram + units * c.tcp_segment_time
    assert ev.result.serving_seconds_per_io.flat[i] == pytest.approx(t)
    # DRAM per payload byte: NIC 1 + one copy with write-allocate 3 (send-zc); + two copies (cpu-copy)
    assert ev.result.dram_bytes_per_byte.flat[i] == 4
    _, i, r = _row(ev, "cpu-copy", S, **{"workload.connections": 1.0})
    assert ev.result.dram_bytes_per_byte.flat[i] == 7


def test_tcp_checksum_cost_when_not_offloaded(tcp):
    on = evaluate_scenario(tcp)
    off = evaluate_with_overrides(tcp, {"workload.checksum_offload": 0})
    d = off.result.serving_seconds_per_io - on.result.serving_seconds_per_io
    assert np.allclose(d, on.result.io_size / tcp.platform.cpu.tcp_checksum_rate)


def test_tcp_multichannel_reaches_the_link(tcp):
    ev = evaluate_scenario(tcp)
    _, i, r = _row(ev, "cpu-copy", MiB, **{"workload.connections": 4.0})
    assert r["binding"] == "links"
    assert 11.0e9 < r["throughput_bytes_per_s"] < 12.5e9


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
    base = evaluate_grid(smbd, {"workload.io_size": [8 * MiB]}, paths=[4]).result.throughput[0]
    import dataclasses
    four = dataclasses.replace(smbd, link=dataclasses.replace(smbd.link, count=4, rate=12.5e9))
    r4 = evaluate_grid(four, {"workload.io_size": [8 * MiB]}, paths=[4]).result.throughput[0]
    assert r4 == pytest.approx(base)   # same 400 Gbit/s, same framing


def test_target_requirements(smbd):
    ev = evaluate_scenario(smbd)
    req = requirements(ev, 46e9)
    rows = report.rows(ev)
    for i, r in enumerate(rows):
        if r["copy_path"] == "cpu-copy" and r["io_size_bytes"] == 8 * MiB:
            # 46 GB/s x (6.25 us + 8388608 B / 6.17 GB/s) / 8388608 B = 7.49 serving threads
            assert req.serving_cores[i] == 8
            assert req.links[i] == 2 and req.feasible[i]
        if r["copy_path"] == "dma-offload":
            assert not req.feasible[i] and "async_memcpy" in req.blocker[i]
        if r["copy_path"] == "zero-copy" and r["io_size_bytes"] == 8 * MiB:
            assert req.serving_cores[i] == 1


def test_builtin_rows_cover_required_paths():
    names = copy_paths.builtin_names()
    for n in ("cpu-copy", "async-workers", "dma-offload", "send-zc", "splice", "zero-copy"):
        assert n in names
    assert copy_paths.builtin("cpu-copy", "tcp").copies != copy_paths.builtin("cpu-copy", "smbdirect").copies
    assert RESOURCES[0] == "links"


def test_write_uses_posted_writes_on_pcie(smbd):
    import dataclasses
    w = dataclasses.replace(smbd, workload=dataclasses.replace(smbd.workload, operation="write"))
    S = MiB
    r_read = evaluate_grid(smbd, {"workload.io_size": [S]}, paths=[4]).result
    r_write = evaluate_grid(w, {"workload.io_size": [S]}, paths=[4]).result
    pcie = smbd.platform.nic.pcie
    rate = resources.pcie_rate(5, 16)
    # read: 64 B completions + 20 B; write: 256 B posted writes + 24 B; 4 WR descriptors each
    assert r_read.capacity[1][0] == pytest.approx(rate * S / (S + S / 64 * 20 + 4 * 84))
    assert r_write.capacity[1][0] == pytest.approx(rate * S / (S + S / pcie.max_payload * 24 + 4 * 84))
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
    assert four.capacity[1][0] == pytest.approx(2 * one.capacity[1][0])   # 2 NICs of 2 ports


def test_target_counts_nics_and_outstanding(smbd):
    ev = evaluate_grid(smbd, {"workload.io_size": [8 * MiB]}, paths=[4])
    req = requirements(ev, 60e9)
    assert req.links[0] == 3 and req.nics[0] == 2
    # R = 10 us + 7 us (request + 4 WRs) + 9060554 B / 25 GB/s = 379.422 us; 60 GB/s x R / 8 MiB = 2.71
    assert ev.result.latency_seconds[0] == pytest.approx(379.4222e-6, rel=1e-6)
    assert req.outstanding_ios[0] == 3
    assert req.worker_cores[0] == 0 and not np.signbit(req.worker_cores[0])


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
    # zero-copy: R = rtt 10 us + 7 us (request 5 + 4 WRs x 0.5) + wire / 25 GB/s
    # 4 KiB: wire 4096 + 4 x 82 + 16 + 186 = 4626 B -> R = 17.18504 us; 1 MiB: 1132746 B -> R = 62.30984 us
    for k, (S, R) in enumerate(((4096.0, 17.18504e-6), (MiB, 62.30984e-6))):
        assert r.capacity[RESOURCES.index("pipeline")][k] == pytest.approx(S / R, rel=1e-6)
    # one I/O in flight of 4 KiB: the pipeline binds, far below the link
    assert RESOURCES[r.binding[0]] == "pipeline" and r.throughput[0] < 1e9


def test_pipeline_dma_latency_by_hand(smbd):
    # Xeon, dma-offload-chan, 1 MiB, one I/O in flight. R = rtt 10 us
    # + serving 5 + 0.25 + 2 x 0.5 + 256 descriptors x 0.3 us = 83.05 us
    # + wire (1048576 + 1024 x 82 + 16 + 104 + 82 = 1132746 B) / 25 GB/s = 45.30984 us
    # + copy on one DSA 1048576 B / 30 GB/s = 34.95253 us + completion 2 us  = 175.31237 us
    ev = evaluate_grid(smbd, {"workload.io_size": [MiB], "workload.connections": [1],
                              "workload.outstanding_per_connection": [1]}, paths=[3])
    assert ev.table.names[3] == "dma-offload-chan"
    assert ev.result.latency_seconds[0] == pytest.approx(175.31237e-6, rel=1e-6)
    assert ev.result.capacity[RESOURCES.index("pipeline")][0] == pytest.approx(MiB / 175.31237e-6, rel=1e-6)


def test_small_io_is_per_io_bound(smbd):
    ev = evaluate_grid(smbd, {"workload.io_size": [4096.0, 8 * MiB]}, paths=[4])
    r = ev.result
    assert RESOURCES[r.binding[0]] in ("cpu-serving", "pipeline") and RESOURCES[r.binding[1]] == "links"
    assert r.throughput[0] < r.throughput[1]


# --- the field-report figures, computed on paper (docs/model.md) -------------------------------

def test_field_report_figures_by_hand(smbd, tcp):
    ev = evaluate_scenario(smbd)
    # zero-copy, 8 MiB: 2 x 25 GB/s x 8388608 / (8388608 + 8192 x 82 + RETH 16 + response 104 + 82)
    _, i, r = _row(ev, "zero-copy", 8 * MiB)
    assert r["throughput_bytes_per_s"] == pytest.approx(46.2919e9, rel=1e-5) and r["binding"] == "links"
    # PCIe Gen5 x16: 32 GT/s x 16 x 128/130 / 8 = 63.0154 GB/s; 64 B completions + 20 B, 4 WQEs of 64 + 20 B
    assert r["capacity_pcie_bytes_per_s"] == pytest.approx(48.0103e9, rel=1e-5) and r["next_binding"] == "pcie"
    # cpu-copy, 8 MiB, 4 serving threads: 4 x 8388608 / (5 + 0.25 + 2 x 0.5 us + 8388608 / 6.17 GB/s)
    _, i, r = _row(ev, "cpu-copy", 8 * MiB)
    assert r["throughput_bytes_per_s"] == pytest.approx(24.5671e9, rel=1e-5)
    # TCP, one connection, cpu-copy 1 MiB: 5 + 2 x 0.25 us + 169.947 us (cold, 6.17 GB/s)
    # + 40.801 us (warm buffer -> skb, 25.7 GB/s) + 16 GSO units x 1.25 us = 236.248 us
    _, i, r = _row(evaluate_scenario(tcp), "cpu-copy", MiB, **{"workload.connections": 1.0})
    assert r["throughput_bytes_per_s"] == pytest.approx(4.43845e9, rel=1e-5)
    # 4 connections: the link, 12.5 GB/s x 1448 / 1538 (less the 84 B of SMB headers per I/O)
    _, i, r = _row(evaluate_scenario(tcp), "splice", 8 * MiB, **{"workload.connections": 4.0})
    assert r["binding"] == "links" and r["throughput_bytes_per_s"] == pytest.approx(11.7685e9, rel=1e-3)


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
    assert np.all(X <= nics * 32e9 * 16 / 8)
    # more of any core count, more links, more credits never lower the throughput
    for key, extra in (("workload.io_cores", 7), ("workload.async_workers", 7), ("cpu.cores", 16),
                       ("workload.connections", 3), ("link.count", 1), ("workload.outstanding_per_connection", 16)):
        q = dict(p)
        q[key] = p[key] + extra
        assert np.all(evaluate(q, table, engines).throughput >= X * (1 - 1e-9)), key


def test_target_needs_whole_dma_engines_and_names_the_shortfall(smbd):
    ev = evaluate_grid(smbd, {"workload.io_size": [8 * MiB]}, paths=[3])      # dma-offload-chan on 4 DSA
    assert ev.table.names[3] == "dma-offload-chan"
    req = requirements(ev, 46e9)
    assert req.dma_engines[0] == 2 and req.feasible[0]                      # 46 / 30 GB/s = 1.53 -> 2
    req = requirements(ev, 200e9)                                           # 200 / 30 = 6.7 -> 7 > 4
    assert req.dma_engines[0] == 7 and not req.feasible[0] and "DMA engines, 4 reachable" in req.blocker[0]


def test_target_adds_nics_when_pcie_is_short(smbd):
    # PCIe Gen3 x16: 8 GT/s x 16 x 128/130 / 8 = 15.754 GB/s; 8 MiB in 64 B completions + 4 WQEs:
    # x 8388608 / 11010384 = 12.0025 GB/s per NIC; 46 GB/s needs 4 NICs although 2 links fit on one
    ev = evaluate_with_overrides(smbd, {"pcie.generation": 3}, grid={"workload.io_size": [8 * MiB]})
    i = ev.table.names.index("zero-copy")
    assert ev.result.pcie_capacity_per_nic[i] == pytest.approx(12.0025e9, rel=1e-4)
    req = requirements(ev, 46e9)
    assert req.links[i] == 2 and req.nics[i] == 4
