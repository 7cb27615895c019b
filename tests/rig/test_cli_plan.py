"""`rdmarig plan` and `rdmarig scenarios` through the real CLI (subprocess, real SQLite store)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, store: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, RDMARIG_STORE=str(store), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "rig.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_plan_prints_table_writes_files_and_stores_record(tmp_path):
    store = tmp_path / "r.sqlite"
    out = tmp_path / "out"
    p = run("plan", "smbdirect-2x200g", "--out", str(out), store=store)
    assert p.returncode == 0, p.stderr
    header = next(line for line in p.stdout.splitlines() if line.startswith("| I/O size"))
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "I/O size", "copy path", "throughput [GB/s]", "binding", "cores busy [cores]", "DMA busy [engines]",
        "headroom [%]", "next bottleneck"]
    assert "zero-copy" in p.stdout and "--wide" in p.stdout
    assert (out / "plan-smbdirect-2x200g.md").is_file() and (out / "plan-smbdirect-2x200g.csv").is_file()
    from results.store import Store
    with Store(store) as st:
        recs = st.query(kind="modelled")
    assert len(recs) == 1
    rec = recs[0]
    assert rec.scenario["name"] == "smbdirect-2x200g" and len(rec.scenario["sha256"]) == 64
    assert "cpu.copy_rate_dram" in rec.params["platform_sources"]
    assert rec.summary["zero-copy_max_throughput_gbytes_per_s"] == pytest.approx(46.29, abs=0.01)


def test_plan_csv_json_and_target(tmp_path):
    store = tmp_path / "r.sqlite"
    p = run("plan", str(ROOT / "scenarios" / "smb-tcp-100g.toml"), "--format", "csv", store=store)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].startswith("I/O size [B],copy path,connections [count],throughput [GB/s]")
    assert "pipeline [%]" in p.stdout.splitlines()[0]      # csv carries every column without --wide
    p = run("plan", "smbdirect-2x200g", "--format", "json", "--target", "46GB/s", store=store)
    assert p.returncode == 0, p.stderr
    docs = json.loads(p.stdout)
    row = next(r for r in docs[0]["rows"] if r["copy_path"] == "zero-copy" and r["io_size_bytes"] == 8 * 1024 * 1024)
    assert row["gbytes_per_s"] == pytest.approx(46.29, abs=0.01) and row["binding"] == "links"
    assert row["util_links_pct"] == pytest.approx(100) and row["util_dma_pct"] is None
    assert row["headroom_pct"] == pytest.approx(3.7, abs=0.1)           # PCIe carries 48.01 GB/s
    assert docs[1]["title"].startswith("what it takes to reach 46.0 GB/s")
    rows = [r for r in docs[1]["rows"] if r["copy_path"] == "dma-offload"]
    assert rows and all(r["reachable"] == "no" for r in rows)


def test_plan_wide_adds_every_utilisation(tmp_path):
    p = run("plan", "smb-tcp-100g", "--wide", store=tmp_path / "r.sqlite")
    assert p.returncode == 0, p.stderr
    for header in ("links [%]", "PCIe [%]", "DRAM [%]", "serving cores [%]", "worker cores [%]", "all cores [%]",
                   "DMA [%]", "pipeline [%]"):
        assert header in p.stdout


def test_plan_platform_override(tmp_path):
    p = run("plan", "smbdirect-2x200g", "--platform", "epyc-9654-cx7", store=tmp_path / "r.sqlite")
    assert p.returncode == 0, p.stderr
    assert "epyc-9654-cx7" in p.stdout


@pytest.mark.parametrize("args, words", [
    (["plan", "no-such"], ["unknown scenario", "no-such"]),
    (["plan", "smbdirect-2x200g", "--target", "fast"], ["--target", "46GB/s"]),
    (["plan", "smbdirect-2x200g", "--format", "xml"], ["--format"]),
    (["plan", "smbdirect-2x200g", "--platform", "nope"], ["unknown platform"]),
    (["scenarios", "check", "missing.toml"], ["missing.toml"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, words):
    p = run(*args, store=tmp_path / "r.sqlite")
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in p.stderr
    for w in words:
        assert w in err


def _bad_copy(tmp_path: Path, old: str, new: str, name: str = "bad.toml",
              source: Path = ROOT / "scenarios" / "smbdirect-2x200g.toml") -> Path:
    text = source.read_text()
    assert old in text, old
    f = tmp_path / name
    f.write_text(text.replace(old, new))
    return f


@pytest.mark.parametrize("old, new, words", [
    ("connections = 4 ", "# connections gone ", ["workload.connections", "missing field", "connections = 4"]),
    ('rtt = "10us"', 'rtt = "10GB"', ["workload.rtt", "as a time"]),
    ('rtt = "10us"', "rtt = 10", ["workload.rtt", "no unit"]),
    ('links = "2x200Gbit/s"', 'links = "0x200Gbit/s"', ["network.links", "2x200Gbit/s"]),
    ('links = "2x200Gbit/s"', 'links = "1x400Gbit/s"', ["network.links", "port", "--platform"]),
    ('"zero-copy"]', '"teleport"]', ["copy_paths", "teleport"]),
    ('io_sizes = "64KiB..8MiB"', 'io_sizes = "64KiB..8MiB"\n"cpu.copy_rate_dram" = [' +
     ", ".join(f'"{6 + i / 1000:.3f}GB/s"' for i in range(30000)) + "]", ["1,000,000", "sweep"]),
    ('io_sizes = "64KiB..8MiB"', 'io_sizes = "64KiB..8MiB"\n"cpu.cores" = [' +
     ", ".join(str(i) for i in range(1, 2502)) + "]", ["100,040 points", "100,000 rows", "sweep fewer values"]),
], ids=["missing-field", "wrong-unit", "no-unit", "zero-links", "link-faster-than-port", "unknown-path",
        "sweep-over-model-cap", "sweep-over-table-cap"])
def test_bad_scenario_through_the_cli(tmp_path, old, new, words):
    f = _bad_copy(tmp_path, old, new)
    p = run("plan", str(f), store=tmp_path / "r.sqlite")
    assert p.returncode == 2, (p.stdout[-300:], p.stderr)
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in p.stderr and str(f) in err
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "r.sqlite").exists()      # validation happens before anything is stored


@pytest.mark.parametrize("value", ['"0GB/s"', '"-5GB/s"'])
def test_zero_or_negative_capacity_through_the_cli(tmp_path, value):
    plat = _bad_copy(tmp_path, 'dram_bandwidth = "294GB/s"', f"dram_bandwidth = {value}", "plat.toml",
                     ROOT / "scenarios" / "platforms" / "xeon-8470-cx7.toml")
    p = run("plan", "smbdirect-2x200g", "--platform", str(plat), store=tmp_path / "r.sqlite")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and str(plat) in err and "memory.dram_bandwidth" in err


def test_bad_scenario_file_names_field(tmp_path):
    text = (ROOT / "scenarios" / "smbdirect-2x200g.toml").read_text().replace('mtu = "1500B"', 'mtu = "fast"')
    f = tmp_path / "bad.toml"
    f.write_text(text)
    p = run("scenarios", "check", str(f), store=tmp_path / "r.sqlite")
    assert p.returncode == 2
    assert str(f) in p.stderr and "network.mtu" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_scenarios_list_show_check(tmp_path):
    s = tmp_path / "r.sqlite"
    p = run("scenarios", "list", store=s)
    assert p.returncode == 0 and "smbdirect-2x200g" in p.stdout and "xeon-8470-cx7" in p.stdout
    p = run("scenarios", "show", "smb-tcp-100g", "--json", store=s)
    doc = json.loads(p.stdout)
    assert doc["links"] == "1x100Gbit/s" and doc["platform"]["sources"]
    p = run("scenarios", "check", str(ROOT / "scenarios" / "platforms" / "epyc-9654-cx7.toml"), store=s)
    assert p.returncode == 0 and "ok: platform" in p.stdout
