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
    assert "throughput [GB/s]" in p.stdout and "binding resource" in p.stdout and "headroom [%]" in p.stdout
    assert "zero-copy" in p.stdout and "links" in p.stdout
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
    assert p.stdout.splitlines()[0].startswith("I/O size,copy path,connections [count],throughput [GB/s]")
    p = run("plan", "smbdirect-2x200g", "--format", "json", "--target", "46GB/s", store=store)
    assert p.returncode == 0, p.stderr
    docs = json.loads(p.stdout)
    assert docs[1]["title"].startswith("what it takes to reach 46.0 GB/s")
    rows = [r for r in docs[1]["rows"] if r["copy_path"] == "dma-offload"]
    assert rows and all(r["reachable"] == "no" for r in rows)


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
