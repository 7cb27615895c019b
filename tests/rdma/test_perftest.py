"""Cross-check with perftest: ib_write_bw and rdmarig on the same devices with the same parameters.

Not a speed test (the soft-RoCE guest is emulated and shared); it catches unit and accounting
mistakes: the two bandwidths must agree within a factor of 3, which a bits/bytes (8x) or
MB/MiB-per-WR slip would break.
"""

from __future__ import annotations

import shutil

import pytest

from rig.rdma import perftest
from rig.rdma.measure import VerbsOptions, run_point

pytestmark = pytest.mark.rdma


def test_ib_write_bw_cross_check(two_devices):
    if shutil.which("ib_write_bw") is None:
        pytest.skip("perftest is not installed (apt-get install perftest)")
    size, n = 65536, 100
    opts = VerbsOptions(op="write", sizes=[size], iterations=n, tx_depth=32, cq_mod=10,
                        device=two_devices[0], peer_device=two_devices[1])
    # Two interleaved rounds each, best against best: other tenants only ever slow a round down,
    # so the maxima are what a busy shared host cannot distort by a factor of 3.
    ours_bw, theirs_bw = [], []
    for _ in range(2):
        ours = run_point(opts, size)
        assert ours.summary["integrity_ok"] is True
        loc, rem = ours.ports["local"], ours.ports["remote"]
        theirs = perftest.run("write", size, device=loc["device"], ib_port=loc["port"],
                              gid_index=loc["gid_index"], peer_device=rem["device"],
                              peer_gid_index=rem["gid_index"], tx_depth=32, cq_mod=10,
                              iterations=n, timeout_s=120)
        assert theirs["bytes_per_msg"] == size and theirs["iterations"] == n
        ours_bw.append(ours.summary["bw_average_gbits_per_s"])
        theirs_bw.append(theirs["bw_average_gbits_per_s"])
    ratio = max(ours_bw) / max(theirs_bw)
    print(f"rdmarig/ib_write_bw bandwidth ratio {ratio:.3f} (rounds: ours {ours_bw}, theirs {theirs_bw})")
    assert 1 / 3 < ratio < 3, (ours_bw, theirs_bw)
    # both children's CPU, counted as rdmarig's own: the parts add up to the total, once each
    assert theirs["cpu_total_s_per_gb"] > 0
    parts = sum(theirs[f"cpu_{k}_s_per_gb"] for k in ("user", "system", "softirq", "rxe_kworker"))
    assert theirs["cpu_total_s_per_gb"] == pytest.approx(parts)
    assert theirs["cpu_accounting"]["scope"] == "given" and theirs["cpu_accounting"]["busy_polling"]
    assert 0 <= theirs["cpu_softirq_in_process_s"] <= theirs["cpu_system_raw_s"]


def test_ib_read_bw_with_events(two_devices):
    """perftest's -e (what `measure verbs --op read --events --vs-perftest` runs) completes on these
    devices (ib_write_bw has no -e: "Events feature not available on WRITE verb")."""
    if shutil.which("ib_read_bw") is None:
        pytest.skip("perftest is not installed (apt-get install perftest)")
    from rig.rdma.devices import discover
    here, there = discover(two_devices[0]), discover(two_devices[1])
    rep = perftest.run("read", 1 << 20, device=here.device, ib_port=here.port, gid_index=here.gid_index,
                       peer_device=there.device, peer_gid_index=there.gid_index, tx_depth=1, cq_mod=1,
                       iterations=10, timeout_s=120, events=True)
    assert " -e " in f" {rep['command_client']} " and rep["iterations"] == 10 and rep["bw_average_gbits_per_s"] > 0
