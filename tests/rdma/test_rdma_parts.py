"""The rdma part probes on real soft-RoCE devices (the host tier only sees them skipped): copy.mrreg
and proto.smbd (one-packet READs through the flows' serving and client loops), the parts `calibrate host --place guest` fits cpu.mr_register_time and
cpu.smb_request_time from, each stored as a record with positive CPU figures."""

import pytest

from results.store import Store
from rig.copy import rdma_parts, smbd_exchange

pytestmark = pytest.mark.rdma


def test_mrreg_and_exchange_probes_store_their_records(two_devices, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RDMARIG_SPOOL", raising=False)       # the guest's spool would carry them to the host store
    store = tmp_path / "parts.sqlite"
    code = rdma_parts.main(["--probe", "mrreg,exchange", "--sizes", "64KiB", "--depths", "1,8", "--exchanges", "50",
                            "--repetitions", "2", "--device", two_devices[1], "--peer-device", two_devices[0],
                            "--store", str(store)])
    out = capsys.readouterr()
    assert code == 0, out.err
    with Store(store) as st:
        mrreg = st.query(kind="measured", name="copy.mrreg")
        exchange = sorted(st.query(kind="measured", name="proto.smbd"), key=lambda r: r.params["requests_in_flight"])
    assert sorted(r.params["source"] for r in mrreg) == ["anon", "file"]
    for r in mrreg:
        assert r.params["io_size_bytes"] == 65536 and all(v > 0 for v in r.samples["cpu_seconds_per_registration"])
    assert [r.params["requests_in_flight"] for r in exchange] == [1, 8]
    for r in exchange:
        s = r.samples
        assert len(s["server_cpu_seconds_per_exchange"]) == len(s["client_cpu_seconds_per_exchange"]) == 2
        # each end's whole CPU per exchange is its user + system (what calibrate takes for smb_request_time)
        for whole, user, system in zip(s["server_cpu_seconds_per_exchange"], s["server_user_cpu_seconds_per_exchange"],
                                       s["server_system_cpu_seconds_per_exchange"]):
            assert whole == pytest.approx(user + system) and whole > 0
        assert r.params["exchanges"] == 50 and r.params["data_wrs"] == 1       # the READ's one-packet data WR
        assert r.params["bulk_bytes"] == smbd_exchange.DATA_WR_BYTES
        # run by the flows' own loops, which count their turns: each sleep after 16 empty ones
        assert r.params["loops"] == "flows"
        for end in ("server", "client"):
            for turns, sleeps in zip(s[f"{end}_turns_per_exchange"], s[f"{end}_sleeps_per_exchange"]):
                assert turns >= 16 * sleeps and turns > 0
    # the served file is gone with the runs
    import glob
    assert not glob.glob("/dev/shm/rdmarig-exchange-*")


def test_pread_probe_times_the_copy_alone_beside_a_running_chain_and_posting_it(two_devices, tmp_path, capsys,
                                                                                monkeypatch):
    """copy.pread: per size one record alone, one beside a `measure verbs --events` WRITE chain
    between the two devices (which moved packets while the copy was timed), and one with the copying
    thread posting the chain itself (its WRITEs completed, each after a pread); positive CPU per byte."""
    from rig.copy import pread_copy
    monkeypatch.delenv("RDMARIG_SPOOL", raising=False)
    store = tmp_path / "parts.sqlite"
    sent = pread_copy.sent_packets(two_devices[1])
    code = rdma_parts.main(["--probe", "pread", "--sizes", "1MiB", "--repetitions", "2", "--device", two_devices[1],
                            "--peer-device", two_devices[0], "--store", str(store)])
    out = capsys.readouterr()
    assert code == 0, out.err
    with Store(store) as st:
        recs = st.query(kind="measured", name="copy.pread")
    by = {("own" if r.params["own_chain"] else "beside" if r.params["beside_chain"] else "alone"): r for r in recs}
    assert set(by) == {"alone", "beside", "own"}, out.out
    assert by["beside"].params["beside_chain"] == {"op": "write", "events": True, "qps": 2, "tx_depth": 8,
                                                   "io_size_bytes": 1 << 20}
    assert by["own"].params["own_chain"] == {"op": "write", "events": True, "qps": 1, "tx_depth": 8,
                                             "io_size_bytes": 1 << 20}
    for r in recs:
        assert len(r.samples["cpu_s_per_gb"]) == 2 and all(v > 0 for v in r.samples["cpu_s_per_gb"])
    # the posting runs' WRITEs completed (at least one per buffer) and went out as packets of at most
    # 4 KiB (RoCE's largest MTU), beside the other chain's
    wrs = by["own"].summary["wrs_completed"]
    assert wrs >= 8
    assert pread_copy.sent_packets(two_devices[1]) - sent >= pread_copy.CHAIN_MOVING_PACKETS + wrs * (1 << 20) // 4096


def test_placement_probe_times_where_two_new_posters_chains_ran(two_devices, tmp_path, capsys, monkeypatch):
    """nic.placement: two poster processes, each its own QP pair and 8 WRITEs of 1 MiB in flight,
    sleeping on completion events; per window the busiest CPU's share of ksoftirqd's time (at least
    an even split, at most all of it), the least busy CPU at most an even share of the busy time
    (to a tick),
    and the chains moved packets (stalled windows are counted apart)."""
    import multiprocessing
    import os
    import statistics
    monkeypatch.delenv("RDMARIG_SPOOL", raising=False)
    store = tmp_path / "parts.sqlite"
    code = rdma_parts.main(["--probe", "placement", "--sizes", "1MiB", "--repetitions", "2", "--device",
                            two_devices[1], "--peer-device", two_devices[0], "--store", str(store)])
    out = capsys.readouterr()
    assert code == 0, out.err
    with Store(store) as st:
        (rec,) = st.query(kind="measured", name="nic.placement")
    assert rec.params["posters"] == 2 and rec.params["tx_depth"] == 8 and rec.params["io_size_bytes"] == 1 << 20
    s = rec.samples
    assert len(s["ksoftirqd_top_share"]) + rec.params["stalled_windows"] == 2 and s["ksoftirqd_top_share"]
    cpus = len(os.sched_getaffinity(0))
    for top, least, busy, ksoft in zip(s["ksoftirqd_top_share"], s["least_busy_cpu_per_s"], s["busy_cpu_per_s"],
                                       s["ksoftirqd_s"]):
        assert 1 / cpus - 1e-9 <= top <= 1 + 1e-9 and ksoft > 0
        # /proc/stat counts in 10 ms ticks, the CPUs' lines and their sum each a tick or two apart
        assert 0 <= least <= busy / cpus + 0.02 and busy > 0
    # both posters' chains moved in every window kept
    assert all(0 < r <= 1 for r in s["slower_poster_ratio"]) and all(g > 0 for g in s["gbytes_per_s"])
    assert rec.summary["median_ksoftirqd_top_share"] == pytest.approx(statistics.median(s["ksoftirqd_top_share"]))
    # both posters of every window are gone with it
    assert not multiprocessing.active_children()
