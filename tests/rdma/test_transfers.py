"""Integrity of RDMA WRITE / READ / SEND through pyverbs, loopback and across two devices."""

from __future__ import annotations

import pytest

from rig.launch.local import loopback
from rig.rdma import analysis
from rig.rdma.integrity import verify_transfer
from rig.rdma.measure import VerbsOptions, run_point
from rig.rdma.player import PlayerConfig

pytestmark = pytest.mark.rdma
OPS = ["write", "read", "send"]


@pytest.mark.parametrize("op", OPS)
def test_integrity_loopback(rdma_devices, op):
    cfg = PlayerConfig(msg_bytes=64 * 1024, slots=4, num_qps=2, tx_depth=16, rx_depth=16)
    a, b = loopback(cfg, device=rdma_devices[0])
    try:
        res = verify_transfer(a, b, op)
    finally:
        a.close()
        b.close()
    assert res["ok"], res
    assert res["bytes"] == 2 * 4 * 64 * 1024
    assert res["sha256_source"] == res["sha256_target"]


@pytest.mark.parametrize("op", OPS)
def test_integrity_across_devices(two_devices, op):
    first, second = two_devices
    cfg = PlayerConfig(msg_bytes=32 * 1024 + 7, slots=3, num_qps=1, tx_depth=16, rx_depth=16)   # odd size on purpose
    a, b = loopback(cfg, device=first, peer_device=second)
    try:
        assert a.port.device == first and b.port.device == second
        res = verify_transfer(a, b, op)
    finally:
        a.close()
        b.close()
    assert res["ok"], res


def test_corruption_is_detected(rdma_devices):
    """The checks can fail: corrupt one byte at the target after a real transfer and both
    detectors the measurements use (verify_transfer's byte count, run_point's slot compare) see it."""
    from rig.rdma.integrity import mismatched_bytes
    from rig.rdma.measure import _integrity_loopback
    cfg = PlayerConfig(msg_bytes=4096, slots=2, num_qps=1, tx_depth=8, rx_depth=8)
    a, b = loopback(cfg, device=rdma_devices[0])
    try:
        res = verify_transfer(a, b, "write")
        assert res["ok"] and _integrity_loopback(VerbsOptions(op="write"), a, b)["integrity_ok"]
        data = bytearray(b.read_bytes())
        data[17] ^= 0xFF                         # slot 0 of QP 0: what run_point compares
        b.write_bytes(bytes(data))
        assert mismatched_bytes(a.read_bytes(), b.read_bytes()) == 1
        assert not _integrity_loopback(VerbsOptions(op="write"), a, b)["integrity_ok"]
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("op", OPS)
def test_bandwidth_point(rdma_devices, op, loop):
    opts = VerbsOptions(op=op, sizes=[16384], num_qps=2, tx_depth=16, cq_mod=8, post_list=2, iterations=32,
                        warmup_iterations=8, validate=True)
    point = run_point(opts, 16384)
    s = point.summary
    assert s["loop"] == loop and ("loop_note" in s) == (loop == "python")
    assert s["integrity_ok"] and point.integrity["validate"]["ok"]
    assert s["wrs"] == 2 * 32
    assert s["bytes"] == 2 * 32 * 16384
    assert 0 < s["bw_average_gbytes_per_s"] <= s["bw_peak_gbytes_per_s"]
    assert s["msg_rate_mpps"] > 0
    assert s["post_calls"] == 2 * 32 // 2 and s["completions"] == 2 * 32 // 8
    assert len(point.samples["slice_gbytes_per_s"]) == analysis.SLICES
    # the devices' counters over the run: at least one packet per WR went out (rxe counts them)
    moved = s["rdma_hw_counters"]
    assert sum(c.get("sent_pkts", 0) for c in moved.values()) >= 2 * 32
    # CPU: each part once; the total is their sum; softirq served inside the loop left system time
    cpu = point.cpu["local"]
    # the process ran (getrusage totals are exact; the in-context softirq taken out may leave system 0)
    assert point.cpu["remote"] is None and cpu["user_s"] + cpu["system_raw_s"] > 0
    gb = s["bytes"] / 1e9
    parts = s["cpu_user_s"] + s["cpu_system_s"] + s["cpu_softirq_s"] + s["cpu_rxe_kworker_s"]
    assert s["cpu_total_s_per_gb"] == pytest.approx(parts / gb)
    assert s["cpu_system_s"] == pytest.approx(cpu["system_raw_s"] - cpu["softirq_in_process_s"])
    assert 0 <= cpu["softirq_in_process_s"] <= cpu["system_raw_s"]
    note = point.cpu_accounting["local"]
    assert note["busy_polling"] and note["scope"] == "process"
    assert note["in_context_softirq_taken_out_of_system_time"] == bool(note["softirq_in_task_time"])


def test_duration_mode_and_inline(rdma_devices, default_loop):
    opts = VerbsOptions(op="write", sizes=[64], tx_depth=16, cq_mod=4, inline_bytes=64, duration_s=0.5)
    point = run_point(opts, 64)
    s = point.summary
    assert s["loop"] == default_loop
    assert s["wrs"] > 0 and s["wrs"] % 4 == 0 and s["completions"] * 4 == s["wrs"]
    assert 0.4 < s["seconds"] < 5
    assert s["integrity_ok"]


@pytest.mark.parametrize("op", OPS)
def test_latency(rdma_devices, op, default_loop):
    """Post to completion (one WR in flight; SEND: the target's receive reposted after each). The
    Python loop's WRITE and SEND post-to-completion runs are in the ping-pong test below."""
    opts = VerbsOptions(op=op, sizes=[64], latency=True, latency_mode="post", iterations=50, warmup_iterations=5)
    point = run_point(opts, 64)
    s = point.summary
    assert s["loop"] == default_loop and s["latency_method"] == "post_to_completion" and s["integrity_ok"]
    assert s["wrs"] == 50 and len(point.samples["latency_s"]) == 50
    assert 0 < s["latency_min_s"] <= s["latency_median_s"] <= s["latency_p99_s"] <= s["latency_max_s"] < 1.0


def test_cli_sweep_json_and_store(rdma_devices, tmp_path):
    """`rdmarig measure verbs` end to end: size sweep, JSON out, one record per size in the store."""
    import json
    import os
    import subprocess
    import sys

    from results.store import Store
    env = {k: v for k, v in os.environ.items() if k != "RDMARIG_SPOOL"}
    db = tmp_path / "r.sqlite"
    out = subprocess.run([sys.executable, "-m", "rig.cli", "measure", "verbs", "--op", "read", "--size", "4KiB..16KiB",
                          "-n", "20", "-t", "8", "-Q", "4", "--json", "--store", str(db)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [p["params"]["io_size_bytes"] for p in doc["points"]] == [4096, 8192, 16384]
    assert all(p["summary"]["integrity_ok"] for p in doc["points"])
    with Store(db) as st:
        recs = [st.get(p["record_id"]) for p in doc["points"]]
    assert all(r.name == "verbs.read.bw" and r.kind == "measured" for r in recs)
    assert recs[0].summary["bw_average_gbytes_per_s"] > 0 and "rdma_ports" in recs[0].provenance
    assert recs[0].provenance["cpu_accounting"]["local"]["scope"] == "process"
    assert set(doc["points"][0]) == {"params", "summary", "integrity", "ports", "cpu", "cpu_accounting", "record_id"}


@pytest.mark.parametrize("op", OPS)
def test_rdma_cm_connection(two_devices, op):
    """QPs connected through rdma_cm (rxe0 -> rxe1 over the veth addresses), then a checked run."""
    opts = VerbsOptions(op=op, sizes=[8192], num_qps=2, tx_depth=16, cq_mod=8, iterations=32, rdma_cm=True,
                        device=two_devices[0], peer_device=two_devices[1], validate=True)
    point = run_point(opts, 8192)
    assert point.params["connection"] == "loopback via rdma_cm"
    assert point.summary["integrity_ok"] and point.integrity["validate"]["ok"]
    assert point.summary["wrs"] == 64


@pytest.mark.parametrize("op", ["write", "send"])
def test_pingpong_latency_is_half_a_round_trip(rdma_devices, op, loop):
    """Ping-pong (as ib_write_lat/ib_send_lat): both directions arrive intact, and half a round
    trip is of the order of the post-to-completion time (one message plus its ACK): a loop that
    did not wait for the answer would be far below, one that forgot to halve about 2x above."""
    pp = run_point(VerbsOptions(op=op, sizes=[4096], latency=True, iterations=200, warmup_iterations=20), 4096)
    s = pp.summary
    assert pp.params["latency_mode"] == "pingpong" and s["latency_method"] == "half_round_trip"
    assert s["loop"] == loop
    assert s["integrity_ok"] and pp.integrity["integrity_checked_bytes"] == 2 * 4096
    assert s["wrs"] == 200 and s["bytes"] == 2 * 200 * 4096
    assert 0 < s["latency_min_s"] <= s["latency_median_s"] <= s["latency_p99_s"] <= s["latency_max_s"] < 1.0
    # measured in the TCG guest: 0.8-1.1; the two runs follow each other on a shared host, and a
    # stretch of host load under one of them once gave 1.72 (CI, 2026-12-01): up to three pairs,
    # one inside the bounds shows the loop waits and halves
    ratios = []
    for attempt in range(3):
        if attempt:
            s = run_point(VerbsOptions(op=op, sizes=[4096], latency=True, iterations=200,
                                       warmup_iterations=20), 4096).summary
        post = run_point(VerbsOptions(op=op, sizes=[4096], latency=True, latency_mode="post", iterations=200,
                                      warmup_iterations=20), 4096).summary
        assert post["latency_method"] == "post_to_completion"
        ratios.append(s["latency_median_s"] / post["latency_median_s"])
        if 0.3 < ratios[-1] < 1.6:
            break
    assert 0.3 < ratios[-1] < 1.6, ratios


def test_pingpong_answer_with_a_bad_rkey_is_a_named_completion_error(rdma_devices, loop):
    """B answers into a key A never handed out: the loop reports B's completion error by name
    while it waits, well within the time limit, instead of spinning until it."""
    import time

    from rig.flows.descriptor import BufferDescriptor
    from rig.flows.pingpong import PingPong
    from rig.rdma.completions import CompletionError
    from rig.rdma.traffic import LoopParams
    cfg = PlayerConfig(msg_bytes=4096, slots=1, num_qps=1, tx_depth=8, rx_depth=8)
    a, b = loopback(cfg, device=rdma_devices[0])
    try:
        pp = PingPong(a, b, LoopParams(op="write", msg_bytes=4096, iterations=10, timeout_s=30, loop=loop))
        good = pp.ends[0].advertise()
        pp.ends[1].aim(BufferDescriptor(good.offset, good.token ^ 0x5A5A00, good.length))
        t0 = time.monotonic()
        with pytest.raises(CompletionError) as info:
            pp.loop(10, 0)
        assert time.monotonic() - t0 < 20
        assert info.value.status_name.startswith("IBV_WC_") and info.value.status_name != "IBV_WC_SUCCESS"
        assert info.value.wr["op"] == "write" and info.value.wr["qp_num"] == b.qps[0].qp_num
    finally:
        a.close()
        b.close()


def test_the_loops_tick_while_they_run(rdma_devices, loop):
    """Progress (and a peer run's keep-alive) comes from the loops' own clock readings: every
    tick_s while a bandwidth or latency loop runs, with the WRs completed so far."""
    from dataclasses import replace

    from rig.rdma.traffic import LoopParams, run_bw, run_latency
    cfg = PlayerConfig(msg_bytes=4096, slots=1, num_qps=1, tx_depth=16, rx_depth=16)
    a, b = loopback(cfg, device=rdma_devices[0])
    try:
        for run in (run_bw, run_latency):
            ticks = []
            # the latency loop's duration runs within `iterations` stamps: give it room
            p = LoopParams(op="write", msg_bytes=4096, duration_s=1.0, iterations=100_000, tx_depth=16, cq_mod=4, tick_s=0.2,
                           on_tick=lambda n, t: ticks.append((n, t)), loop=loop)
            raw = run(a, b.endpoint(), p)
            assert raw.loop == loop
            assert len(ticks) >= 3, (run.__name__, ticks)
            assert [n for n, _ in ticks] == sorted(n for n, _ in ticks) and ticks[-1][0] <= raw.wrs_completed
            assert all(0.15 < t2 - t1 for (_, t1), (_, t2) in zip(ticks, ticks[1:]))
            quiet = run(a, b.endpoint(), replace(p, duration_s=0.3, on_tick=None))
            assert quiet.wrs_completed > 0
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("op,depth,mod", [("write", 1, 1), ("write", 4, 2), ("read", 4, 2), ("send", 4, 2)])
def test_events_the_poster_sleeps_on_completions(two_devices, op, depth, mod):
    """--events (perftest -e): the Python loop asks for a completion event and waits on the send
    CQ's channel when nothing has completed. 4 MiB across the veth: rxe leaves most of each WR's
    chain to ksoftirqd (the poster kept 7-45 ms of ~190 ms in the guest; at 1 MiB one run in the
    guest once completed every WR inside its post), so the poster finds nothing done and waits;
    every byte arrives (SEND: the target's receives reposted before each wait)."""
    opts = VerbsOptions(op=op, sizes=[4 << 20], num_qps=2, tx_depth=depth, cq_mod=mod, iterations=6,
                        rx_depth=depth, device=two_devices[0], peer_device=two_devices[1], events=True)
    point = run_point(opts, 4 << 20)
    s = point.summary
    assert s["loop"] == "python" and "--events" in s["loop_note"]
    assert s["integrity_ok"] and s["wrs"] == 2 * 6 and s["completions"] == 2 * 6 // mod
    assert 0 < s["event_waits"] <= 2 * s["completions"] + 2     # a wait per completion, and per leftover event
    assert point.params["events"] is True
    note = point.cpu_accounting["local"]
    assert note["poster_sleeps_on_events"] is True and note["busy_polling"] is False


def test_events_through_serve(two_devices):
    """The initiator sleeps on events against `rdmarig serve` too (the launcher builds its Player
    with completion channels)."""
    from tests.rdma.test_faults import _serve_in_thread
    server, stop, t = _serve_in_thread(two_devices[1])
    try:
        host, port = server.address
        point = run_point(VerbsOptions(op="write", sizes=[1 << 20], tx_depth=1, cq_mod=1, iterations=4,
                                       device=two_devices[0], peer_addr=f"{host}:{port}", events=True), 1 << 20)
    finally:
        stop.set()
        t.join(5)
        server.close()
    assert point.summary["integrity_ok"] and point.summary["wrs"] == 4
    assert point.summary["event_waits"] > 0
