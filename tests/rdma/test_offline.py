"""Parts of the RDMA room that need no device: statistics from stamps, perftest output parsing,
the pyverbs compatibility layer, and the CLI's message when there is no device."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from rig.rdma import analysis, perftest
from rig.rdma.traffic import LoopParams, RawRun, effective_cq_mod


def _raw(n_comp=100, per=10, msg=1 << 20, gap_ns=1_000_000, tx_depth=20):
    comp = np.arange(1, n_comp + 1, dtype=np.int64) * gap_ns
    return RawRun(op="write", msg_bytes=msg, num_qps=1, wrs_per_completion=per,
                  post_ns=np.zeros(n_comp * per, dtype=np.int64), comp_ns=comp, wrs_completed=n_comp * per,
                  cpu={"user_s": 0.5, "system_s": 0.25, "softirq_s": 0.25, "wall_s": 0.1})


def test_bandwidth_from_stamps():
    s, samples = analysis.bandwidth(_raw())
    # 1000 WRs of 1 MiB in 100 ms
    assert s["bytes"] == 1000 * 2**20
    assert s["bw_average_gbytes_per_s"] == pytest.approx(1000 * 2**20 / 0.1 / 1e9)
    assert s["bw_average_gbits_per_s"] == pytest.approx(8 * s["bw_average_gbytes_per_s"])
    assert s["msg_rate_mpps"] == pytest.approx(1000 / 0.1 / 1e6)
    assert s["bw_peak_gbytes_per_s"] >= s["bw_average_gbytes_per_s"]
    gb = s["bytes"] / 1e9
    assert s["cpu_user_s_per_gb"] == pytest.approx(0.5 / gb)
    assert s["cpu_total_s_per_gb"] == pytest.approx(1.0 / gb)
    assert len(samples["slice_gbytes_per_s"]) == analysis.SLICES


def _perftest_peak_reference(post_wr_ns, comp_wr_ns, signaled):
    """print_report_bw's double loop, literally, over per-WR stamps (only signaled j count)."""
    best = np.inf
    for i in range(len(post_wr_ns)):
        for j in range(i, len(comp_wr_ns)):
            if signaled[j]:
                best = min(best, (comp_wr_ns[j] - post_wr_ns[i]) / (j - i + 1))
    return best


def test_peak_is_perftests_definition():
    """Random-ish stamps (posts in pairs, one completion per 4 WRs, a fast stretch in the middle):
    the vectorised search equals perftest's double loop over per-WR stamps."""
    rng = np.random.default_rng(7)
    pl, mod, n_wr = 2, 4, 400
    post_calls = np.cumsum(rng.integers(500, 1500, n_wr // pl)).astype(np.int64)
    post_calls[40:60] = post_calls[39] + np.arange(1, 21) * 50          # a burst of fast posts
    post_calls[60:] = post_calls[59] + np.cumsum(rng.integers(500, 1500, n_wr // pl - 60))
    post_wr = np.repeat(post_calls, pl)
    comp = post_wr[mod - 1::mod] + rng.integers(20_000, 40_000, n_wr // mod)
    comp = np.maximum.accumulate(comp)
    comp_wr = np.zeros(n_wr, dtype=np.int64)
    signaled = np.zeros(n_wr, dtype=bool)
    comp_wr[mod - 1::mod], signaled[mod - 1::mod] = comp, True
    want = _perftest_peak_reference(post_wr, comp_wr, signaled)
    got, stride = analysis.peak_seconds_per_wr(post_calls, comp, pl, mod)
    assert stride == 1 and got == pytest.approx(want * 1e-9, rel=1e-12)
    raw = RawRun(op="write", msg_bytes=1 << 16, num_qps=1, wrs_per_completion=mod, post_ns=post_calls,
                 comp_ns=comp, wrs_completed=n_wr, cpu={})
    s, _ = analysis.bandwidth(raw, wrs_per_post=pl)
    assert s["bw_peak_gbytes_per_s"] == pytest.approx((1 << 16) / (want * 1e-9) / 1e9)
    assert s["bw_peak_gbytes_per_s"] > s["bw_average_gbytes_per_s"]


def test_latency_from_stamps():
    post = np.arange(1000, dtype=np.int64) * 10_000
    lat = np.full(1000, 5_000, dtype=np.int64)
    lat[-1] = 50_000
    raw = RawRun(op="read", msg_bytes=64, num_qps=1, wrs_per_completion=1, post_ns=post, comp_ns=post + lat,
                 wrs_completed=1000, cpu={})
    s, samples = analysis.latency(raw)
    assert s["latency_min_s"] == pytest.approx(5e-6) and s["latency_median_s"] == pytest.approx(5e-6)
    assert s["latency_max_s"] == pytest.approx(50e-6)
    assert len(samples["latency_s"]) == 1000


def test_pingpong_latency_is_half_the_round_trip():
    post = np.arange(100, dtype=np.int64) * 100_000
    raw = RawRun(op="write", msg_bytes=64, num_qps=1, wrs_per_completion=1, post_ns=post, comp_ns=post + 10_000,
                 wrs_completed=100, cpu={}, stamps_span="round_trip")
    s, _ = analysis.latency(raw)
    assert s["latency_median_s"] == pytest.approx(5e-6) and s["latency_method"] == "half_round_trip"
    assert s["bytes"] == 2 * 100 * 64          # the message crossed twice per round trip


def test_cq_moderation_rules():
    assert effective_cq_mod(LoopParams(cq_mod=100, tx_depth=128, post_list=1)) == 100
    assert effective_cq_mod(LoopParams(cq_mod=100, tx_depth=16, post_list=1)) == 16      # never above the depth
    assert effective_cq_mod(LoopParams(cq_mod=10, tx_depth=128, post_list=4)) == 8       # a multiple of the post list
    assert effective_cq_mod(LoopParams(cq_mod=1, tx_depth=128, post_list=4)) == 4


def test_parse_perftest_report():
    text = """
---------------------------------------------------------------------------------------
 #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]
 65536      100              0.21               0.20                 0.000381
---------------------------------------------------------------------------------------
"""
    r = perftest.parse_report(text)
    assert r["bytes_per_msg"] == 65536 and r["iterations"] == 100 and r["bw_average_gbits_per_s"] == 0.20
    with pytest.raises(ValueError):
        perftest.parse_report("Couldn't connect to 127.0.0.1:18515")


@pytest.mark.parametrize("python", [sys.executable, "/usr/bin/python3"])
def test_compat_loads_pyverbs_in_both_pythons(python):
    """Debian's pyverbs: directly in /usr/bin/python3, through the one-link shim elsewhere."""
    if not os.path.exists(python):
        pytest.skip(f"{python} does not exist")
    if not os.path.isdir("/usr/lib/python3/dist-packages/pyverbs"):
        pytest.skip("Debian python3-pyverbs is not installed")
    code = ("from rig.rdma import compat; V = compat.load(); "
            "assert V.e.IBV_QPT_RC == 2 and V.e.IBV_WR_RDMA_WRITE == 0 and V.e.IBV_WC_SUCCESS == 0; "
            "assert V.wc_status_name(12) == 'IBV_WC_RETRY_EXC_ERR'; print(V.api)")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("pyverbs.enums", "pyverbs.libibverbs_enums")


def test_no_device_is_one_line_with_the_guest_hint():
    from rig.rdma.devices import list_devices
    try:
        if list_devices():
            pytest.skip("this host has an RDMA device")
    except Exception as exc:       # no pyverbs: the CLI must say so instead
        pytest.skip(f"pyverbs unavailable: {exc}")
    out = subprocess.run([sys.executable, "-m", "rig.cli", "measure", "verbs", "--no-store"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert "no RDMA device" in out.stderr and "rdmarig guest run" in out.stderr
    lines = out.stderr.strip().splitlines()
    # the progress line the command prints at once, then the one error line
    assert "Traceback" not in out.stderr and len(lines) == 2 and lines[-1].startswith("rdmarig: error: ")


def test_memlock_too_low_says_how_much_and_how(monkeypatch):
    from rig.rdma import player as resources
    from scenarios.errors import InputError
    monkeypatch.setattr(resources, "_has_cap_ipc_lock", lambda: False)
    monkeypatch.setattr(resources.resource, "getrlimit", lambda which: (64 * 1024, 64 * 1024))
    with pytest.raises(InputError) as info:
        resources.check_memlock(256 * 2**20)
    text = info.value.one_line()
    assert "RLIMIT_MEMLOCK is 64KiB" in text and "ulimit -l" in text and "260MiB" in text
    monkeypatch.setattr(resources.resource, "getrlimit", lambda which: (resources.resource.RLIM_INFINITY,) * 2)
    resources.check_memlock(256 * 2**20)          # unlimited: fine
    monkeypatch.setattr(resources, "_has_cap_ipc_lock", lambda: True)
    monkeypatch.setattr(resources.resource, "getrlimit", lambda which: (64 * 1024, 64 * 1024))
    resources.check_memlock(256 * 2**20)          # CAP_IPC_LOCK ignores the limit


def test_progress_lines_during_a_point():
    """measure verbs' ticker: a line after 2 s, then at most every 5 s; a loop that starts over
    (warm-up, then the timed run) shows at once."""
    import io

    from rig.cli.measure_verbs import _ticker
    from rig.progress import Progress
    out = io.StringIO()
    tick = _ticker(Progress(1, "verbs write bandwidth", stream=out), 65536)
    for wrs, t in ((10, 1.0), (20, 2.1), (30, 5.0), (40, 7.2), (45, 12.0), (50, 12.3), (5, 0.4)):
        tick(wrs, t)
    assert out.getvalue().splitlines() == ["  65536 B: 20 WRs completed after 2 s", "  65536 B: 40 WRs completed after 7 s",
                                          "  65536 B: 50 WRs completed after 12 s", "  65536 B: 5 WRs completed after 0 s"]


def test_parse_perftest_latency_report():
    from rig.rdma import perftest_lat
    text = """
---------------------------------------------------------------------------------------
 #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec] 
 64      1000          12.38          6088.65      274.53   	       1676.17     	1791.07		4712.78 		6088.65
---------------------------------------------------------------------------------------
"""
    r = perftest_lat.parse_report(text)
    assert r["bytes_per_msg"] == 64 and r["iterations"] == 1000
    assert r["latency_min_s"] == pytest.approx(12.38e-6) and r["latency_typical_s"] == pytest.approx(274.53e-6)
    assert r["latency_p999_s"] == pytest.approx(6088.65e-6) and r["latency_max_s"] == pytest.approx(6088.65e-6)
    with pytest.raises(ValueError):
        perftest_lat.parse_report(text.replace("t_min", "BW average"))
    cmd = perftest_lat.command("write", 64, device="rxe0", ib_port=1, gid_index=1, iterations=1000, inline_bytes=0,
                               tcp_port=19000)
    assert cmd[:3] == ["ib_write_lat", "-d", "rxe0"] and "-I" in cmd and "-Q" not in cmd
    assert "-I" not in perftest_lat.command("read", 64, device="rxe0", ib_port=1, gid_index=1, iterations=10,
                                            inline_bytes=0, tcp_port=1)



def test_bandwidth_command_events_flag():
    """--events asks ib_read_bw / ib_send_bw for completion events (-e); ib_write_bw has none."""
    from rig.rdma import perftest
    from scenarios.errors import InputError
    common = dict(device="rxe0", ib_port=1, gid_index=1, num_qps=1, tx_depth=1, cq_mod=1, post_list=1,
                  inline_bytes=0, iterations=10, duration_s=0.0, tcp_port=19000)
    assert "-e" in perftest.command("read", 65536, events=True, **common)
    assert "-e" in perftest.command("send", 65536, events=True, **common)
    assert "-e" not in perftest.command("read", 65536, **common)
    with pytest.raises(InputError, match="Events feature not available on WRITE verb"):
        perftest.command("write", 65536, events=True, **common)

def _compiled():
    from rig.rdma import native
    ok, why = native.available()
    if not ok:
        pytest.skip(f"the compiled loop is unavailable: {why}")
    return native


def test_the_compiled_loops_own_cost():
    """The bandwidth loop over a device that does nothing: every WR posted and completed, stamps
    counted as the loop writes them, a cost per WR that is a cost (the figure itself is printed by
    benchmarks/verbs_vs_perftest.py, not judged here)."""
    native = _compiled()
    one = native.self_cost(wrs=200_000)
    assert one["wrs"] == 200_000 and one["ns_per_wr"] > 0 and one["ns_per_post_call"] == one["ns_per_wr"]
    listed = native.self_cost(wrs=200_000, post_list=4, cq_mod=10, num_qps=3)
    assert listed["cq_mod"] == 8 and listed["wrs"] % (3 * 8) == 0
    assert listed["ns_per_post_call"] == pytest.approx(4 * listed["ns_per_wr"])


def test_the_clock_converts_to_perf_counter_ns():
    import time
    native = _compiled()
    ck = native.clock()
    raw = ck.L.rr_clock()
    t = time.perf_counter_ns()
    to_ns = ck.converter()
    assert abs(to_ns(raw) - t) < 2_000_000          # within 2 ms (the two readings are ~us apart)
    arr = to_ns(np.array([raw, raw + ck.ticks(1.0)], dtype=np.int64))
    assert arr.dtype == np.int64 and arr[1] - arr[0] == pytest.approx(1e9, rel=0.01)


@pytest.mark.parametrize("value, works", [("", True), ("auto", True), ("native", True), ("Python", False),
                                          ("nativ", None), ("0", None)])
def test_the_loop_switch(monkeypatch, value, works):
    from rig.rdma import native
    from scenarios.errors import InputError
    monkeypatch.setenv(native.ENV_LOOP, value)
    if works is None:
        with pytest.raises(InputError, match="RDMARIG_LOOP.*names no loop.*python"):
            native.available()
    elif works:
        assert native.available() == native.available()        # built or not: the same answer each time
    else:
        assert native.available() == (False, "RDMARIG_LOOP=python")


def test_the_loader_names_why_the_build_failed(monkeypatch, tmp_path):
    from rig.rdma import native
    (tmp_path / "err.txt").write_text("Traceback ...\ninfiniband/verbs.h not found: apt-get install libibverbs-dev\n")
    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setattr(native, "_why_not", None)
    monkeypatch.setattr(native, "library_path", lambda: None)
    monkeypatch.setattr(native, "BUILD_ERROR_FILE", tmp_path / "err.txt")
    monkeypatch.delenv(native.ENV_LOOP, raising=False)
    ok, why = native.available()
    assert not ok and why == "the C loop failed to build at install: infiniband/verbs.h not found: " \
                             "apt-get install libibverbs-dev"
    monkeypatch.setattr(native, "_why_not", None)
    monkeypatch.setattr(native, "BUILD_ERROR_FILE", tmp_path / "none.txt")
    assert "is not built" in native.available()[1]
    monkeypatch.setattr(native, "_why_not", None)
    with pytest.raises(native.NativeUnavailable, match="is not built"):
        native.lib()


def test_a_failed_build_does_not_fail_the_install(tmp_path):
    """setup.py's build_ext with a compiler that fails: exit 0, the reason written where the
    loader looks for it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "CC": "false", "LDSHARED": "false"}
    out = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
                          "--build-temp", str(tmp_path / "tmp")], cwd=root, capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert "the C loop was not built" in out.stderr and "Python loops will run" in out.stderr
    recorded = (tmp_path / "lib" / "rig" / "rdma" / "_fastloop.build-error.txt").read_text()
    assert recorded.strip().splitlines()[-1] in out.stderr
    assert not list((tmp_path / "lib").rglob("_fastloop*.so"))
