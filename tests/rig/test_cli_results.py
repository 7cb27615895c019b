"""The CLI as a user meets it: a real subprocess, real store file, exit codes and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

from results.record import Record
from results.store import Store

ROOT = Path(__file__).resolve().parents[2]


def rdmarig(*args, store=None, check=False):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if store:
        env["RDMARIG_STORE"] = str(store)
    proc = subprocess.run([sys.executable, "-m", "rig.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_results_list_show_export(tmp_path):
    store = tmp_path / "r.sqlite"
    rec = Record(kind="measured", name="copy.memcpy", summary={"median_gbytes_per_s": 12.5})
    with Store(store) as st:
        st.insert(rec)
    out = rdmarig("results", "list", store=store, check=True).stdout
    assert rec.id[:12] in out and "copy.memcpy" in out and "median_gbytes_per_s=12.5" in out
    listed = json.loads(rdmarig("results", "list", "--json", store=store, check=True).stdout)
    assert listed[0]["id"] == rec.id
    shown = json.loads(rdmarig("results", "show", rec.id[:10], store=store, check=True).stdout)
    assert shown["summary"]["median_gbytes_per_s"] == 12.5
    csv_path = tmp_path / "x" / "r.csv"
    rdmarig("results", "export", "--format", "csv", "--out", str(csv_path), store=store, check=True)
    assert "summary.median_gbytes_per_s" in csv_path.read_text()


def test_bad_input_is_one_line_exit_2(tmp_path):
    store = tmp_path / "r.sqlite"
    for args in (["results", "show", "deadbeef"], ["results", "export", "--format", "xml"]):
        proc = rdmarig(*args, store=store)
        assert proc.returncode == 2, proc
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rdmarig: error: "), proc.stderr
        assert "Traceback" not in proc.stderr


def test_unwritable_store_is_one_line(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("")
    proc = rdmarig("results", "list", store=blocker / "r.sqlite")
    assert proc.returncode == 2 and "cannot open result store" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
