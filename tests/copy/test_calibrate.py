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
    assert "fitted host parameters" in c.stdout and "model vs measured" in c.stdout
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
