"""Calibration: the fitters recover known parameters; `calibrate host` writes a loadable profile
from real records whose every measured figure cites records that exist."""

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from models import calibrate as cal
from results.store import Store
from rig.cli import main
from scenarios import platform_writer as pw
from scenarios import schema


def test_copy_law_fit_recovers_known_rates():
    rng = np.random.default_rng(1)
    sizes = [2.0 ** k for k in range(16, 28)]
    pts = [cal.Point(s, float(cal.copy_rate(s, 40e9, 10e9, 1.5e6)) * rng.normal(1, 0.02), f"r{i}")
           for i, s in enumerate(sizes) for _ in range(3)]
    fit = cal.fit_copy_rates(pts)
    assert fit.params["copy_rate_cache"].value == pytest.approx(40e9, rel=0.1)
    assert fit.params["copy_rate_dram"].value == pytest.approx(10e9, rel=0.1)
    assert fit.params["cache_per_core"].value == pytest.approx(1.5e6, rel=0.35)
    e = fit.params["copy_rate_dram"]
    assert e.low < e.value < e.high
    assert fit.rms_relative_error < 0.05


def test_per_call_fit_recovers_per_byte_and_per_call_costs():
    rng = np.random.default_rng(2)
    pts = []
    for chunk in (64 << 10, 1 << 20, 8 << 20):
        calls_per_byte = 1 / chunk
        for _ in range(3):
            y = (0.2e-9 + 2e-6 * calls_per_byte) * rng.normal(1, 0.01)
            pts.append(cal.Point(calls_per_byte, y, f"c{chunk}"))
    fit = cal.fit_per_call_costs(pts)
    assert fit.params["per_byte_seconds"].value == pytest.approx(0.2e-9, rel=0.05)
    assert fit.params["per_call_seconds"].value == pytest.approx(2e-6, rel=0.1)
    assert set(fit.params["per_call_seconds"].record_ids) == {f"c{c}" for c in (64 << 10, 1 << 20, 8 << 20)}


def test_fitters_refuse_too_few_points():
    with pytest.raises(ValueError):
        cal.fit_copy_rates([cal.Point(4096, 1e9, "a")])
    with pytest.raises(ValueError):
        cal.fit_per_call_costs([cal.Point(1e-5, 1e-10, "a")] * 3)


def _rdmarig(capsys, *args) -> subprocess.CompletedProcess:
    """The console script's entry point in this process (an interpreter start-up costs ~1 CPU-s)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store with real memcpy and socket records of this host (read-only for the tests)."""
    path = tmp_path_factory.mktemp("calibrate") / "r.sqlite"
    for argv in (["--probe", "memcpy", "--sizes", "64KiB,1MiB,16MiB,64MiB", "--threads", "1", "--repetitions", "2"],
                 ["--probe", "memcpy", "--sizes", "64MiB", "--threads", str(os.cpu_count()), "--repetitions", "1"],
                 ["--probe", "socket", "--paths", "rw,sendfile", "--sizes", "64KiB,1MiB", "--repetitions", "2",
                  "--duration", "0.1s"]):
        try:
            main(["measure", "copy", *argv, "--store", str(path)])
        except SystemExit as exc:
            assert not exc.code, exc.code
    return path


def test_calibrate_host_writes_a_measured_section_over_a_base(tmp_path, capsys, store):
    out = tmp_path / "this-host.toml"
    c = _rdmarig(capsys, "calibrate", "host", "--out", str(out), "--store", str(store))
    assert c.returncode == 0, c.stderr
    assert "fitted parameters" in c.stdout and "model vs measured" in c.stdout
    plat = schema.load_platform(out)
    assert plat.base in schema.builtin_platforms() and f"base {plat.base}" in c.stdout
    base = schema.load_platform(plat.base)
    text = out.read_text()
    head, section = text.split(pw.MARKER)
    assert "[measured." not in head and "copy_rate_cache" not in head
    assert set(plat.measured) >= {"cpu.copy_rate_cache", "cpu.copy_rate_dram", "cpu.cache_per_core",
                                  "cpu.tcp_segment_time"}
    assert plat.cpu.copy_rate_cache == plat.measured["cpu.copy_rate_cache"].value
    with Store(store) as st:
        ids = {r.id for r in st.query()}
    for key, m in plat.measured.items():
        source = plat.sources()[key]
        assert source.startswith("measurement: rdmarig calibrate host") and m.records
        cited = re.findall(r"\b[0-9a-f]{32}\b", source)
        assert cited and set(cited) == set(m.records) and set(cited) <= ids, key
    # figures nothing measured come from the base, with the base's sources
    assert plat.cpu.smb_request_time == base.cpu.smb_request_time
    assert plat.sources()["cpu.rdma_wr_time"] == base.sources()["cpu.rdma_wr_time"]
    assert plat.cpu.cores == os.cpu_count()
    # the scenario runs on the calibrated profile
    p = _rdmarig(capsys, "plan", "smb-tcp-loopback", "--platform", str(out), "--store", str(store))
    assert p.returncode == 0, p.stderr
    assert "sendfile" in p.stdout

    # a second run rewrites the measured section only: an edit above the marker stays
    out.write_text(head.replace('[cpu]\n', '[cpu]\n# my note\n') + pw.MARKER + section)
    c = _rdmarig(capsys, "calibrate", "host", "--out", str(out), "--store", str(store))
    assert c.returncode == 0, c.stderr and "measured section updated" in c.stdout
    again = out.read_text()
    assert again.startswith(head.replace('[cpu]\n', '[cpu]\n# my note\n')) and again.count(pw.MARKER) == 1
    assert schema.load_platform(out).measured.keys() == plat.measured.keys()


def test_a_measured_figure_the_profile_cannot_hold_is_not_written(tmp_path, capsys, store):
    out = tmp_path / "tiny.toml"
    out.write_text('name = "tiny"\nbase = "epyc-9654-cx7"\n[memory]\ndram_peak = "0.2GB/s"\n'
                   'dram_peak_source = "assumption: a deliberately tiny peak"\n'
                   'dram_bandwidth = "0.1GB/s"\ndram_bandwidth_source = "assumption: below the peak"\n')
    c = _rdmarig(capsys, "calibrate", "host", "--out", str(out), "--store", str(store))
    assert c.returncode == 0, c.stderr
    row = next(line for line in c.stdout.splitlines() if line.startswith("| memory.dram_bandwidth"))
    assert row.rstrip(" |").endswith("no")                       # fitted, not written
    assert "memory.dram_bandwidth: not written" in c.stdout and "exceeds memory.dram_peak 0.2GB/s" in c.stdout
    plat = schema.load_platform(out)
    assert "memory.dram_bandwidth" not in plat.measured and "cpu.copy_rate_dram" in plat.measured
    assert plat.memory.dram_bandwidth == 0.1e9


def _old_profile(tmp_path: Path) -> Path:
    f = tmp_path / "old.toml"
    f.write_text("# Written by `rdmarig calibrate host` on 2026-01-01\n" + (PLATFORMS / "epyc-9654-cx7.toml").read_text()
                 .replace('name = "epyc-9654-cx7"', 'name = "old-host"'))
    return f


def test_an_old_whole_profile_is_replaced_by_one_naming_a_base(tmp_path, capsys, store):
    out = _old_profile(tmp_path)
    c = _rdmarig(capsys, "calibrate", "host", "--out", str(out), "--store", str(store))
    assert c.returncode == 0, c.stderr
    assert "replaced" in c.stdout
    plat = schema.load_platform(out)
    assert plat.name == "old-host" and plat.base and plat.measured


PLATFORMS = schema.PLATFORM_DIR


def _scenario_copy(tmp_path: Path) -> Path:
    f = tmp_path / "scenario.toml"
    f.write_text((schema.PACKAGE_DIR / "smbdirect-2x200g.toml").read_text())
    return f


def _hand_measured(tmp_path: Path) -> Path:
    f = tmp_path / "hand.toml"
    f.write_text('name = "hand"\nbase = "epyc-9654-cx7"\n[measured.cpu.copy_rate_dram]\nvalue = "8GB/s"\n'
                 'method = "by hand"\nrecords = ["r1"]\n')
    return f


def _named(tmp_path: Path) -> Path:
    f = tmp_path / "named.toml"
    f.write_text('name = "named"\nbase = "epyc-9654-cx7"\n')
    return f


def _file(tmp_path: Path, data: bytes, name: str = "p.toml") -> Path:
    f = tmp_path / name
    f.write_bytes(data)
    return f


def _dir(tmp_path: Path) -> Path:
    d = tmp_path / "d.toml"
    d.mkdir()
    return d


# (id, extra argv given tmp_path, message fragment); every row passes a store with real records
OPTION_ROWS = [
    ("out-not-toml", lambda t: ["--out", str(t / "p.txt")], "a platform profile is a .toml file"),
    ("out-directory", lambda t: ["--out", str(_dir(t))], "is a directory"),
    ("out-datasheet-profile", lambda t: ["--out", str(PLATFORMS / "xeon-8470-cx7.toml")], "datasheet profile"),
    ("out-not-utf8", lambda t: ["--out", str(_file(t, b"name = \"\xff\"\n"))], "not UTF-8"),
    ("out-not-toml-syntax", lambda t: ["--out", str(_file(t, b"name = \n"))], "not valid TOML"),
    ("out-empty", lambda t: ["--out", str(_file(t, b""))], "empty platform file"),
    ("out-is-a-scenario", lambda t: ["--out", str(_scenario_copy(t))], "platform: unknown key at the top level"),
    ("out-hand-written-measured", lambda t: ["--out", str(_hand_measured(t))], "not written by calibrate host"),
    ("out-broken-base", lambda t: ["--out", str(_file(t, b'name = "x"\nbase = "gone.toml"\n'))], "no such platform"),
    ("name-differs", lambda t: ["--out", str(_named(t)), "--name", "other"], "--name other"),
    ("base-differs", lambda t: ["--out", str(_named(t)), "--base", "xeon-8470-cx7"], "--base xeon-8470-cx7"),
    ("base-unknown", lambda t: ["--out", str(t / "n.toml"), "--base", "nope"], "--base nope: unknown platform"),
    ("base-is-a-scenario", lambda t: ["--out", str(t / "n.toml"), "--base", "smbdirect-2x200g"], "unknown platform"),
    ("base-directory", lambda t: ["--out", str(t / "n.toml"), "--base", str(_dir(t))], "is a directory"),
    ("base-not-utf8", lambda t: ["--out", str(t / "n.toml"), "--base", str(_file(t, b"\xfe", "b.toml"))], "not UTF-8"),
    ("scenario-unknown", lambda t: ["--out", str(t / "n.toml"), "--scenario", "nope"], "unknown scenario"),
    ("scenario-directory", lambda t: ["--out", str(t / "n.toml"), "--scenario", str(_dir(t))], "is a directory"),
    ("out-unwritable", lambda t: ["--out", "/proc/rdmarig-this-host.toml"], "cannot write"),
    ("place-unknown", lambda t: ["--out", str(t / "n.toml"), "--place", "nowhere"], "--place 'nowhere': no records"),
    ("place-guest-without-guest-records", lambda t: ["--out", str(t / "n.toml"), "--place", "guest"],
     "no records of the soft-RoCE guest"),
    ("place-empty", lambda t: ["--out", str(t / "n.toml"), "--place", ""], "no records of that place"),
]


@pytest.mark.parametrize("row", OPTION_ROWS, ids=lambda r: r[0])
def test_calibrate_host_bad_options(run_cli, tmp_path, store, row):
    _, argv, fragment = row
    args = argv(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    run_cli("calibrate", "host", *args, "--store", str(store)).one_line_error(2, fragment)
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before   # nothing written
    assert not (tmp_path / "n.toml").exists()


@pytest.mark.parametrize("store_arg, fragment", [("missing.sqlite", "no result store"), ("", "is a directory")])
def test_calibrate_host_bad_store(run_cli, tmp_path, store_arg, fragment):
    run_cli("calibrate", "host", "--out", str(tmp_path / "p.toml"),
            "--store", str(tmp_path / store_arg)).one_line_error(2, fragment)
    assert not (tmp_path / "p.toml").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_calibrate_host_without_records_is_one_line(tmp_path, capsys, existing):
    store = tmp_path / "empty.sqlite"
    if existing:
        with Store(store) as st:
            assert st.query(limit=1) == []
    c = _rdmarig(capsys, "calibrate", "host", "--out", str(tmp_path / "p.toml"), "--store", str(store))
    assert c.returncode == 2
    assert len(c.stderr.strip().splitlines()) == 1 and "rdmarig measure" in c.stderr
    assert not (tmp_path / "p.toml").exists()
    assert store.exists() == existing  # a mistyped --store path is not created as an empty store


# --- places, the new probes' fits, the software NIC (records built here, clearly fixtures) --------

from results.record import Record  # noqa: E402
from rig import calibrate as rc  # noqa: E402

GUEST = {"host": "(none)", "cpu_model": "QEMU TCG CPU version 2.5+", "kernel": "6.1.0-57-amd64",
         "guest_accel": "tcg", "cpu_count": 2, "mem_total_bytes": 2 * 2 ** 30}
OTHER = {"host": "elsewhere", "cpu_model": "Some CPU", "kernel": "6.18.0", "guest_accel": None, "cpu_count": 8}


def _rec(name: str, params: dict, samples: dict | None = None, summary: dict | None = None,
         provenance: dict = GUEST, created: str | None = None) -> Record:
    r = Record(kind="measured", name=name, params=params, samples=samples or {}, summary=summary or {},
               provenance=dict(provenance))
    if created:
        r.created = created
    return r


def _memcpy_records(provenance=GUEST) -> list[Record]:
    # one rate for every size, 2 GB/s per CPU-second (the copy law then has cache = DRAM rate)
    return [_rec("copy.memcpy", {"io_size_bytes": s, "processes": 1},
                 {"call_corrected_per_cpu_second_gbytes_per_s": [2.0, 2.02, 1.98]}, provenance=provenance)
            for s in (64 << 10, 1 << 20, 8 << 20, 64 << 20)]


def test_places_keep_each_machine_apart_and_say_which_records():
    recs = _memcpy_records() + _memcpy_records(OTHER)
    found = rc.places(recs)
    assert len(found) == 2
    place, mine = rc.pick_place(recs, "guest")
    assert place.is_guest and len(mine) == 4 and all(r.provenance["guest_accel"] == "tcg" for r in mine)
    summary = rc.place_summary(place, mine)
    assert summary.startswith("4 records of guest (tcg): QEMU TCG CPU") and "copy.memcpy 4" in summary
    place, mine = rc.pick_place(recs, rc.place_of(recs[-1]).label)
    assert place.host == "elsewhere" and len(mine) == 4
    from scenarios.errors import InputError
    with pytest.raises(InputError, match="no records of that place"):
        rc.pick_place(recs, "nowhere")


def test_fault_pin_pagecopy_and_checksum_fits_by_hand():
    a, z = 1.5e-6, 13e9                                   # per fault, zeroing rate
    t4, t2 = a + 4096 / z, a + (2 << 20) / z
    fault = [_rec("copy.fault", {"page_kind": "4k"}, {"cpu_seconds_per_page": [t4] * 3,
                                                      "unmap_cpu_seconds_per_page": [0.2e-6] * 3}),
             _rec("copy.fault", {"page_kind": "thp"}, {"cpu_seconds_per_page": [t2] * 3})]
    e = rc.fault_estimates(fault)
    assert e["cpu.page_fault_time"].value == pytest.approx(a)
    assert e["cpu.page_zero_rate"].value == pytest.approx(z)
    assert e["cpu.unmap_page_time"].value == pytest.approx(0.2e-6)
    # a THP fault slower per byte than a whole 4 KiB fault (a guest session, 16:35 UTC): the medians
    # leave no time per fault; one pairing of the repetitions did, but no figure is written
    tcg = [_rec("copy.fault", {"page_kind": "4k"}, {"cpu_seconds_per_page": [18.25e-6, 22.12e-6, 18.45e-6]}),
           _rec("copy.fault", {"page_kind": "thp"}, {"cpu_seconds_per_page": [11579.41e-6, 11420.22e-6, 9389.97e-6]})]
    assert rc.fault_estimates(tcg) == {}
    # two repetitions each: the medians (means of two) solve to a fault time below every pairing kept
    # (a > 0) and a zero rate below them too; the interval still holds the value
    mixed = [_rec("copy.fault", {"page_kind": "4k"}, {"cpu_seconds_per_page": [t4 * 0.3, t4 * 0.5]}),
             _rec("copy.fault", {"page_kind": "thp"}, {"cpu_seconds_per_page": [t2 * 0.3, t2 * 3.0]})]
    e = rc.fault_estimates(mixed)
    assert set(e) == {"cpu.page_fault_time", "cpu.page_zero_rate"}
    for est in e.values():
        assert est.low <= est.value <= est.high
    pa, pb = 2.3e-9, 52.7e-9                              # per 4 KiB page, per folio
    pin = [_rec("copy.pin", {"method": "uring-register", "page_kind": "4k"}, {"cpu_seconds_per_page": [pa + pb] * 3}),
           _rec("copy.pin", {"method": "uring-register", "page_kind": "thp"},
                {"cpu_seconds_per_page": [pa + pb / 512] * 3})]
    e = rc.pin_estimates(pin)
    assert e["cpu.pin_page_time"].value == pytest.approx(pa) and e["cpu.pin_folio_time"].value == pytest.approx(pb)
    # THP no cheaper than 4 KiB pages per 4 KiB (as under TCG): no split is written
    assert rc.pin_estimates([pin[0], _rec("copy.pin", {"method": "uring-register", "page_kind": "thp"},
                                          {"cpu_seconds_per_page": [2 * (pa + pb)] * 3})]) == {}
    # page copies: the THP record's per-piece figure; when it is negative, the 4 KiB time per page less 4 KiB
    # at the DRAM-regime rate
    pc = [_rec("copy.pagecopy", {"page_kind": "thp"}, {"fitted_per_page_cpu_seconds_per_page": [0.35e-6] * 3})]
    assert rc.pagecopy_estimate(pc, 10e9)[0].value == pytest.approx(0.35e-6)
    bad = [_rec("copy.pagecopy", {"page_kind": "thp"}, {"fitted_per_page_cpu_seconds_per_page": [-1e-4]}),
           _rec("copy.pagecopy", {"page_kind": "4k"}, {"cpu_seconds_per_page": [13.6e-6] * 3})]
    est, how = rc.pagecopy_estimate(bad, 2e9)
    assert est.value == pytest.approx(13.6e-6 - 4096 / 2e9) and "4 KiB-folio" in how
    # checksum: the sender's extra CPU per GB with offload off is one pass: rate = 1 GB / extra
    cs = [_rec("copy.csum", {"path": "sendfile", "checksum_offload": "off"},
               summary={"offload_off_extra_tx_cpu_s_per_gb": 0.1, "offload_off_extra_rx_cpu_s_per_gb": 0.12})]
    rate, per_path = rc.csum_estimate(cs)
    assert rate.value == pytest.approx(10e9) and per_path == {"sendfile tx": 0.1, "sendfile rx": 0.12}


@pytest.mark.parametrize("noise", [0.0, 0.03])
def test_the_software_nic_fit_recovers_the_terms_the_model_was_given(noise):
    """Verbs records made by the model itself with known software-NIC figures: the fit, which uses the
    model's equations, gets them back exactly without noise, and inside its intervals with 3 % noise."""
    from models.sweep import evaluate_with_overrides
    s = schema.load_scenario("verbs-this-host")
    truth = {"nic.soft_crc_rate": 0.5e9, "nic.soft_packet_time": 20e-6, "nic.soft_wr_time": 60e-6}
    rng = np.random.default_rng(5)
    recs = []
    for op in ("write", "read", "send"):
        for size in (256, 1024, 1536, 4096, 16384, 65536, 262144, 1 << 20):
            ev = evaluate_with_overrides(s, truth, grid={"workload.io_size": [size],
                                                        "workload.operation_code": [rc.VERBS_OPERATION[op]]})
            r = ev.result
            user = ev.table.rdma_wrs_per_io[0] * s.platform.cpu.rdma_wr_time / size
            kernel = (r.both_ends_seconds_per_byte[0] - user) * 1e9 * rng.normal(1, noise)
            recs.append(_rec(f"verbs.{op}.bw", {"mode": "bandwidth", "peer_device": "rxe0", "op": op, "io_size_bytes": size},
                             summary={"cpu_system_s_per_gb": kernel * 0.7, "cpu_softirq_s_per_gb": kernel * 0.3,
                                      "cpu_ksoftirqd_s": 0.1,
                                      "cpu_user_s_per_gb": 25e-6 / size * 1e9, "integrity_ok": True}))
    fit = rc.fit_soft_rdma(recs, s, {})
    assert fit is not None and fit.fit.n_points == 16          # write and read fitted; send shown, not fitted
    for key, value in truth.items():
        e = fit.figures[key]
        if noise == 0:
            assert e.value == pytest.approx(value, rel=1e-6), key
        else:
            assert e.low <= value <= e.high, (key, e)
    assert fit.wr_user.value == pytest.approx(25e-6)
    # runs on one device (no --peer-device: rxe's own loopback, no veth) are not the path SMB Direct takes
    one = [_rec(r.name, {**r.params, "peer_device": None}, summary=r.summary) for r in recs]
    assert rc.fit_soft_rdma(one, s, {}) is None
    # a poster sleeping on completion events (--events) is not the condition the terms are fitted at
    sleeping = [_rec(r.name, {**r.params, "events": True}, summary=r.summary) for r in recs]
    assert rc.fit_soft_rdma(sleeping, s, {}) is None


def test_the_inline_time_comes_from_sleeping_posters_with_wrs_to_spare():
    """nic.soft_inline_time: per `measure verbs --events` run (two devices, >= 2 WRs in flight per
    QP), the t that keeps the poster's system time of the chain (system + ksoftirqd) in t (1 - e^(-c/t));
    the median over the runs. Busy-polling runs, one WR in flight, and runs where ksoftirqd took
    nothing (a lower bound only) are left out."""
    from models.resources import kept_inline
    tau = 8e-3

    def run(size, chain_per_wr, wrs=40, **over):
        kept = float(kept_inline(chain_per_wr, tau))
        params = {"mode": "bandwidth", "peer_device": "rxe0", "op": "write", "io_size_bytes": size, "events": True,
                  "tx_depth": 4, **over}
        return _rec("verbs.write.bw", params, summary={"wrs": wrs, "cpu_system_raw_s": kept * wrs,
                                                        "cpu_ksoftirqd_s": (chain_per_wr - kept) * wrs,
                                                        "integrity_ok": True})
    runs = [run(1 << 18, 0.015), run(1 << 20, 0.06), run(1 << 22, 0.2)]
    e = rc.inline_time_estimate(runs)
    assert e.value == pytest.approx(tau, rel=1e-6) and e.unit == "s" and len(e.record_ids) == 3
    left_out = [run(1 << 20, 0.06, tx_depth=1), run(1 << 20, 0.06, events=False),
                _rec("verbs.write.bw", {**runs[0].params}, summary={**runs[0].summary, "cpu_ksoftirqd_s": 0.0})]
    assert rc.inline_time_estimate(left_out) is None
    assert rc.inline_time_estimate(runs + left_out).record_ids == e.record_ids


def _exchange(depth: int, server: list[float], client: list[float], data_wrs: int | None, loops: str | None = None):
    from rig.records import measured_record
    params = {"requests_in_flight": depth, **({} if data_wrs is None else {"data_wrs": data_wrs}),
              **({} if loops is None else {"loops": loops})}
    return measured_record("proto.smbd", params, {"server_cpu_seconds_per_exchange": server,
                                                  "client_cpu_seconds_per_exchange": client}, {})


def test_the_request_times_take_the_data_wr_out_of_the_server_when_the_part_posted_one():
    from scenarios.schema import load_platform
    base = load_platform("soft-roce-guest")
    wr, send = base.cpu.rdma_wr_time, base.nic.soft_wr_time + 4 * base.nic.soft_packet_time
    old = [_exchange(32, [1.0e-3], [0.9e-3], None), _exchange(8, [5.0e-3], [5.0e-3], None)]
    new = [_exchange(32, [1.4e-3], [0.9e-3], 1)]
    # the older kind (no data WR, no data_wrs param) beside the newer: the newer is taken, its data WR
    # (a post + reap, a one-packet chain) charged apart like the response SEND
    x = rc.request_estimate(old + new)
    assert x.data_wrs == 1 and [v for v, _ in x.server] == [1.4e-3]
    ends, _, _ = rc.request_time_estimate(x, {}, base)
    assert ends["server"].value == pytest.approx(1.4e-3 - 2 * (wr + send))
    assert ends["client"].value == pytest.approx(0.9e-3 - 2 * wr - send)       # the client posts no data WR
    x = rc.request_estimate(old)                   # the deepest depth of the older kind
    assert x.data_wrs == 0 and [v for v, _ in x.server] == [1.0e-3]
    ends, _, _ = rc.request_time_estimate(x, {}, base)
    assert ends["server"].value == pytest.approx(1.0e-3 - wr - send)
    # an end with nothing left after what the model charges it apart gets no figure, the other keeps its own
    ends, _, _ = rc.request_time_estimate(rc.ExchangeCpu([(1e-5, "a")], [(0.9e-3, "a")], 1), {}, base)
    assert ends["server"] is None and ends["client"].value == pytest.approx(0.9e-3 - 2 * wr - send)


def test_the_request_times_come_from_the_flows_loops_where_a_store_holds_both_kinds_of_the_part():
    from rig.copy import smbd_exchange
    own = [_exchange(32, [1.4e-3], [0.9e-3], 1), _exchange(32, [1.5e-3], [1.0e-3], 1)]
    flows = [_exchange(32, [2.1e-3], [1.7e-3], 1, "flows"), _exchange(8, [9e-3], [9e-3], 1, "flows")]
    x = rc.request_estimate(own + flows)
    assert x.flows_loops and x.data_wrs == 1
    assert [v for v, _ in x.server] == [2.1e-3] and [v for v, _ in x.client] == [1.7e-3]
    # the newest kind first, then its deepest depth: an older record deeper than the flows' does not win
    x = rc.request_estimate(own + flows + [_exchange(128, [1.7e-3], [1.2e-3], 1)])
    assert x.flows_loops and [v for v, _ in x.server] == [2.1e-3]
    x = rc.request_estimate(own)
    assert not x.flows_loops and sorted(v for v, _ in x.server) == [1.4e-3, 1.5e-3]
    # the part's READs are one packet at any RoCE MTU: the data WR the calibration takes out as one
    assert smbd_exchange.IO_SIZE_BYTES == smbd_exchange.DATA_WR_BYTES <= 256
