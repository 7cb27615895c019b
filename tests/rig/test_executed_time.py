"""rig.executed_time: guest CPU figures in the vCPU time the host executed, by each record's own
share (provenance guest_cpu_executed), parts and whole alike."""

import json

import pytest

from results.record import Record
from results.store import Store
from rig import executed_time as et


def _rec(share, **summary):
    prov = {"host": "g"} if share is None else {"host": "g", "guest_cpu_executed": {"executed_fraction": share}}
    return Record(kind="measured", name="x.y", params={}, provenance=prov, summary=summary,
                  samples={"cpu_seconds": [2.0, 4.0], "gbytes_per_s": [1.0, 3.0], "foreign_cpu_per_s": [0.2]})


def test_cpu_time_fields_take_the_share_and_the_rest_stay():
    r = _rec(0.5, cpu_user_s=2.0, client_cpu_s_per_gb=10.0, median_server_cpu_seconds_per_exchange=0.004,
             median_cpu_seconds_per_registration=0.0004, steal_cpu_per_s=0.1,
             busy_cpu_per_s=1.8, median_client_busy_ratio=0.8, median_per_cpu_second_gbytes_per_s=0.2,
             thp_over_4k_cpu_s_per_gb_ratio=0.7, gbytes_per_s=0.03, seconds=3.0, wrs=100, cpu_scope="both",
             integrity_ok=True, cv=0.1)
    x = et.in_executed_time(r)
    s = x.summary
    assert s["cpu_user_s"] == 1.0 and s["client_cpu_s_per_gb"] == 5.0
    assert s["median_server_cpu_seconds_per_exchange"] == pytest.approx(0.002)
    assert s["busy_cpu_per_s"] == 0.9 and s["median_client_busy_ratio"] == 0.4
    assert s["median_cpu_seconds_per_registration"] == pytest.approx(0.0002)   # "registration" is not "ratio"
    assert s["median_per_cpu_second_gbytes_per_s"] == pytest.approx(0.4)      # bytes per CPU second: divided
    for key in ("thp_over_4k_cpu_s_per_gb_ratio", "steal_cpu_per_s", "gbytes_per_s", "seconds", "wrs", "cpu_scope", "integrity_ok", "cv"):
        assert s[key] == r.summary[key]
    assert x.samples == {"cpu_seconds": [1.0, 2.0], "gbytes_per_s": [1.0, 3.0], "foreign_cpu_per_s": [0.1]}
    assert x.provenance["cpu_time"] == "executed" and x.id == r.id
    assert r.summary["cpu_user_s"] == 2.0 and "cpu_time" not in r.provenance     # the stored record untouched


def test_records_without_a_known_share_are_returned_as_they_are():
    for share in (None, 0, -1.0, "x"):
        r = _rec(share, cpu_user_s=2.0)
        assert et.in_executed_time(r) is r and et.executed_fraction(r) is None
    out, n = et.all_in_executed_time([_rec(None, cpu_user_s=1.0), _rec(0.8, cpu_user_s=1.0)])
    assert n == 1 and out[1].summary["cpu_user_s"] == 0.8


def test_vs_measured_compares_the_whole_in_executed_time_and_predicts_at_its_share(tmp_path, run_cli):
    """The committed guest session with its smbd records marked as executed half of their guest busy
    time: the measured CPU columns halve, the model's columns do not move, and the throughput predicted
    with each vCPU running half of the time is below the one with whole vCPUs."""
    from pathlib import Path

    from results.record import from_json

    export = Path(__file__).resolve().parents[2] / "docs" / "data" / "smbd-vs-measured.jsonl"
    records = [from_json(line) for line in export.read_text().splitlines() if line.strip()]
    plain, marked = tmp_path / "plain.sqlite", tmp_path / "marked.sqlite"
    with Store(plain) as a, Store(marked) as b:
        for r in records:
            a.insert(r)
            if r.name.startswith("smbd."):
                r.provenance = {**r.provenance, "guest_cpu_executed": {"executed_fraction": 0.5}}
            b.insert(r)
    profile = tmp_path / "this-guest.toml"
    assert run_cli("calibrate", "host", "--place", "guest", "--out", str(profile), "--store", str(plain)).code == 0
    tables = []
    for store in (plain, marked):
        res = run_cli("plan", "smbdirect-this-host", "--vs-measured", "--platform", str(profile), "--store",
                      str(store), "--format", "json")
        assert res.code == 0, res.err
        tables.append(json.loads(res.out))
    (before, after) = tables
    assert len(before["rows"]) == len(after["rows"]) > 10
    for r0, r1 in zip(before["rows"], after["rows"]):
        assert r1["predicted_gbytes_per_s"] == r0["predicted_gbytes_per_s"]
        assert r1["predicted_both_cpu_s_per_gb"] == r0["predicted_both_cpu_s_per_gb"]
        assert r1["measured_gbytes_per_s"] == r0["measured_gbytes_per_s"]
        assert r1["measured_server_cpu_s_per_gb"] == pytest.approx(r0["measured_server_cpu_s_per_gb"] / 2)
        assert r1["measured_both_cpu_s_per_gb"] == pytest.approx(r0["measured_both_cpu_s_per_gb"] / 2)
        assert r0["executed_fraction"] is None and r0["predicted_executed_gbytes_per_s"] is None
        assert r1["executed_fraction"] == 0.5
        assert r1["predicted_executed_gbytes_per_s"] < r1["predicted_gbytes_per_s"]
        assert r1["gbps_executed_error_pct"] == pytest.approx(
            100 * (r1["predicted_executed_gbytes_per_s"] - r1["measured_gbytes_per_s"]) / r1["measured_gbytes_per_s"])
    assert any("CPU in executed time" in n for n in after["notes"]) and not any(
        "CPU in executed time" in n for n in before["notes"])
    # the conditions each side ran under, parts against whole: only the whole's share is known here
    smbd_n = sum(1 for r in records if r.name.startswith("smbd.") and r.summary.get("integrity_ok")
                 and not r.summary.get("partial"))
    (conditions,) = [n for n in after["notes"] if n.startswith("conditions")]
    assert (f"executed share of guest busy time - against 0.50 (0.50-0.50, {smbd_n} records)" in conditions
            and "host steal share - against -" in conditions)
    assert not any(n.startswith("conditions") for n in before["notes"])
