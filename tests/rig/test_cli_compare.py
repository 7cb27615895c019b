"""`rdmarig results compare A B` through the CLI: two measured records of a real store, two plans
(records, scenarios, platforms), and bad input one row each."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from results.record import Record, from_json
from results.store import Store

FIXTURES = Path(__file__).resolve().parents[1] / "results" / "fixtures" / "plan-records.jsonl"


def _socket(rid, values, host):
    return Record(kind="measured", name="copy.socket", id=rid, params={"path": "splice", "io_size_bytes": 1048576},
                  samples={"gbytes_per_s": values}, summary={"median_gbytes_per_s": sorted(values)[len(values) // 2]},
                  provenance={"host": host, "kernel": "6.1.0", "rdmarig": "0.1.0"})


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "r.sqlite"
    with Store(path) as st:
        st.insert_many([from_json(line) for line in FIXTURES.read_text().splitlines()]
                       + [_socket("aaaa1111", [3.0, 3.1, 2.9, 3.0], "h1"), _socket("bbbb2222", [3.6, 3.7, 3.5, 3.6], "h2"),
                          Record(kind="measured", name="other", id="cccc3333", summary={"x_s": 1.0})])
    monkeypatch.setenv("RDMARIG_STORE", str(path))
    return path


def test_two_measured_records(run_cli, store):
    res = run_cli("results", "compare", "aaaa1111", "bbbb2222")
    assert res.code == 0, res.err
    assert res.out.startswith("### bbbb2222 (copy.socket) (B) against aaaa1111 (copy.socket) (A)")
    row = next(line for line in res.out.splitlines() if line.startswith("| gbytes_per_s"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:7] == ["gbytes_per_s", "GB/s", "3", "3.6", "+0.6", "+20.0", "4 vs 4"] and cells[-1] == "yes"
    assert "- different hosts: h1 (A) vs h2 (B)" in res.out
    res = run_cli("results", "compare", "aaaa1111", "bbbb2222", "--format", "json")
    doc = json.loads(res.out)
    assert doc["rows"][0]["significant"] == "yes" and doc["rows"][0]["p_value"] < 0.01


def test_two_platforms_two_scenarios_and_plan_records(run_cli, store):
    res = run_cli("results", "compare", "xeon-8470-cx7", "epyc-9654-cx7", "--scenario", "smbdirect-2x200g",
                  "--samples", "200", "--format", "csv")
    assert res.code == 0, res.err
    rows = list(csv.DictReader(io.StringIO(res.out)))
    cpu8 = next(r for r in rows if r["copy path"] == "cpu-copy" and r["I/O size"] == "8MiB")
    # A is the Xeon's point figure, whatever the model's terms make it
    from models import report
    from models.sweep import evaluate_scenario
    from scenarios.schema import load_scenario
    ev = evaluate_scenario(load_scenario("smbdirect-2x200g", platform="xeon-8470-cx7"))
    point = next(r for r in report.rows(ev) if r["copy_path"] == "cpu-copy" and r["io_size_bytes"] == 8 << 20)
    assert float(cpu8["A [GB/s]"]) == pytest.approx(point["throughput_bytes_per_s"] / 1e9, abs=0.01)
    # significant exactly where the two 90% intervals do not overlap
    for r in rows:
        if "-" in r["A 90%"] and "-" in r["B 90%"]:
            (a0, a1), (b0, b1) = (map(float, r[k].split("-")) for k in ("A 90%", "B 90%"))
            assert r["significant"] == ("yes" if a1 < b0 or b1 < a0 else "no"), r
    assert "rdmarig: note: different platform: xeon-8470-cx7 (A) vs epyc-9654-cx7 (B)" in res.err
    res = run_cli("results", "compare", "smb-tcp-100g", "smb-tcp-100g", "--platform", "epyc-9654-cx7", "--samples", "0")
    assert res.code == 0, res.err
    assert "n/a (no intervals)" not in res.out and "| yes" not in res.out      # the same plan twice
    # a stored plan record against a scenario evaluated now: like with like
    res = run_cli("results", "compare", "fixture-plan-smbdirect", "smbdirect-2x200g", "--samples", "200")
    assert res.code == 0, res.err
    assert "smbdirect-2x200g on xeon-8470-cx7 (B) against fixture-plan (plan:smbdirect-2x200g) (A)" in res.out


S = "smbdirect-2x200g"
BAD = [
    (["results", "compare", "nosuch", "aaaa1111"], "no record with id 'nosuch'"),
    (["results", "compare", "nosuch", "aaaa1111"], "and no scenario or platform is named 'nosuch'"),
    (["results", "compare", "xeon-8470-cx7", "epyc-9654-cx7"], "comparing platforms needs the scenario"),
    (["results", "compare", S, "smb-tcp-100g", "--scenario", S], "--scenario names the scenario two platforms run"),
    (["results", "compare", "xeon-8470-cx7", "epyc-9654-cx7", "--scenario", S, "--platform", "xeon-8470-cx7"],
     "--platform names the platform two scenarios run on"),
    (["results", "compare", "aaaa1111", "fixture-plan-smbdirect"], "is a measurement and"),
    (["results", "compare", "aaaa1111", S], "compare like with like"),
    (["results", "compare", "aaaa1111", "cccc3333"], "share no numeric figure"),
    (["results", "compare", S, "smb-tcp-loopback"], "share no point"),
    (["results", "compare", "aaaa1111", "bbbb2222", "--format", "xml"], "--format: unknown format 'xml'"),
    (["results", "compare", S, S, "--samples", "-1"], "--samples -1 is outside"),
    (["results", "compare", "aaaa1111", "bbbb2222", "--platform", "xeon-8470-cx7"], "cannot apply"),
    (["results", "compare", "aaaa1111"], "Missing argument 'B'"),
    (["results", "compare", "fixture", "aaaa1111"], "matches"),
]


@pytest.mark.parametrize("argv, fragment", BAD, ids=[" ".join(r[0][2:])[:60] for r in BAD])
def test_bad_compare_input_is_one_line(run_cli, store, argv, fragment):
    res = run_cli(*argv)
    res.one_line_error(2, fragment)
    assert res.out == ""


def test_records_without_a_store(run_cli, tmp_path):
    run_cli("results", "compare", "aaaa", "bbbb", "--store", str(tmp_path / "none.sqlite")).one_line_error(
        2, "there is no result store")
