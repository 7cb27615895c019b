"""models/report.py: the plan report's rows, notes, 'what it takes' rows and summary, from one evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models import report
from models.bottleneck import RESOURCES
from models.sweep import evaluate_scenario
from models.target import requirements
from scenarios import schema
from scenarios.errors import InputError

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def smbd_ev():
    return evaluate_scenario(schema.load_scenario("smbdirect-2x200g"))


@pytest.fixture(scope="module")
def tcp_ev():
    return evaluate_scenario(schema.load_scenario("smb-tcp-100g"))


def test_rows_follow_the_evaluation_arrays(smbd_ev):
    r = smbd_ev.result
    rows = report.rows(smbd_ev)
    shown = report.table_rows(report.columns(smbd_ev))
    assert len(rows) == len(shown) == smbd_ev.points
    for i, (row, table) in enumerate(zip(rows, shown)):
        X = float(r.throughput[i])
        assert row["io_size_bytes"] == r.io_size[i] and row["copy_path"] == smbd_ev.table.names[r.path_index[i]]
        assert row["throughput_bytes_per_s"] == X and table["gbytes_per_s"] == pytest.approx(X / 1e9)
        assert row["cpu_s_per_gb"] == pytest.approx(r.cpu_seconds_per_byte[i] * 1e9)
        assert table.items() >= row.items()                  # a table row is the row plus display figures
        for j, name in enumerate(RESOURCES):
            key = name.replace("-", "_")
            cap = float(r.capacity[j, i])
            assert row[f"capacity_{key}_bytes_per_s"] == cap
            used = X / cap if cap > 0 else math.inf
            assert row[f"util_{key}_ratio"] == pytest.approx(used)
            assert table[f"util_{key}_pct"] == (pytest.approx(used * 100) if 0 < used < math.inf else None)
        if X > 0:
            assert row["binding"] == RESOURCES[r.binding[i]] and row["next_binding"] == RESOURCES[r.next_binding[i]]
            assert table["headroom_pct"] == pytest.approx((np.sort(r.capacity[:, i])[1] / X - 1) * 100)
        else:                                   # nothing flows: the table says why, not a headroom
            assert row["binding"] == f"{RESOURCES[r.binding[i]]} (none reachable)"
            assert row["next_binding"] == "-" and table["headroom_pct"] is None


def test_table_rows_read_nulls_as_not_used(smbd_ev):
    # a stored report has null where the live one has inf (JSON has no inf): both show '-'
    cols = report.columns(smbd_ev)
    stored = {k: [None if isinstance(v, float) and math.isinf(v) else v for v in vs] for k, vs in cols.items()}
    assert report.table_rows(stored) == [{k: (None if isinstance(v, float) and math.isinf(v) else v)
                                          for k, v in row.items()} for row in report.table_rows(cols)]


def test_rows_carry_each_swept_field_with_its_unit(tcp_ev):
    rows = report.table_rows(report.columns(tcp_ev))
    assert sorted({r["workload_connections"] for r in rows}) == [1.0, 4.0]
    assert report.swept(tcp_ev) == ["workload.connections"]
    assert {r["io_size"] for r in rows} == {"64KiB", "128KiB", "256KiB", "512KiB", "1MiB", "2MiB", "4MiB", "8MiB"}


def test_table_order_is_size_then_swept_then_path(tcp_ev):
    rows = report.rows(tcp_ev)
    ordered = [rows[i] for i in report.order(tcp_ev)]
    path_rank = {p.name: k for k, p in enumerate(tcp_ev.scenario.copy_paths)}
    keys = [(r["io_size_bytes"], r["workload_connections"], path_rank[r["copy_path"]]) for r in ordered]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_notes_name_unreachable_apis_and_count_the_assumptions(smbd_ev):
    s = smbd_ev.scenario
    notes = report.notes(smbd_ev)
    assert "dma-offload: no DMA engine on xeon-8470-cx7 answers async_memcpy (see the platform's dma apis)" in notes
    assert not any(n.startswith("dma-offload-chan:") for n in notes)         # a dedicated channel reaches DSA
    # the assumptions counted from the platform file's own *_source lines
    text = open(s.platform.path).read()
    assumed = [line for line in text.splitlines() if "_source" in line and "assumption" in line.lower()]
    assert f"{len(assumed)} platform figures are assumptions, not measurements" in notes[-1]
    assert f"io_cores {s.workload.io_cores}" in notes[1]


def test_target_rows_and_titles(smbd_ev):
    req = requirements(smbd_ev, 46e9)
    base = report.rows(smbd_ev)
    rows = report.table_rows(report.target_columns(smbd_ev, req, report.columns(smbd_ev)))
    for row, point in zip(rows, base):
        assert (row["io_size_bytes"], row["copy_path"]) == (point["io_size_bytes"], point["copy_path"])
        if row["copy_path"] == "dma-offload":
            assert row["reachable"] == "no" and row["dma_engines"] is None and "async_memcpy" in row["why_not"]
        else:
            assert row["dma_engines"] is not None
        assert (row["reachable"] == "yes") == (row["why_not"] == "") == (row["reachable"] != "no")
    assert any(r["reachable"] == "yes" for r in rows) and any(r["reachable"] == "no" for r in rows)
    assert report.target_title(smbd_ev, 46e9).startswith("what it takes to reach 46.0 GB/s: smbdirect-2x200g")
    assert report.target_title(smbd_ev, 5e6).startswith("what it takes to reach 5.0 MB/s")
    ports = smbd_ev.scenario.platform.nic.ports
    assert report.target_notes(smbd_ev)[1] == f"links of 200 Gbit/s each; NICs follow at {ports} ports per NIC"


def test_path_summary_is_the_best_point_of_each_path(smbd_ev):
    rows = report.rows(smbd_ev)
    summary = report.path_summary(smbd_ev, report.columns(smbd_ev))
    for p in smbd_ev.scenario.copy_paths:
        mine = [r for r in rows if r["copy_path"] == p.name]
        best = max(r["throughput_bytes_per_s"] for r in mine)
        first = next(r for r in mine if r["throughput_bytes_per_s"] == best)
        assert summary[f"{p.name}_max_throughput_gbytes_per_s"] == pytest.approx(best / 1e9)
        assert summary[f"{p.name}_binding_at_max"] == first["binding"]
    assert summary["dma-offload_max_throughput_gbytes_per_s"] == 0


def test_plan_report_is_json_and_in_table_order(tcp_ev):
    doc = report.plan_report(tcp_ev, 46e9)
    again = json.loads(json.dumps(doc))            # what the record stores must survive JSON as it is
    idx = report.order(tcp_ev)
    cols = report.columns(tcp_ev)
    assert again["points"] == {k: [v[i] for i in idx] for k, v in cols.items()}
    assert again["target"]["rate_bytes_per_s"] == 46e9 and len(again["target"]["points"]["links"]) == tcp_ev.points
    assert again["target"]["points"]["copy_path"] == again["points"]["copy_path"]
    assert report.plan_report(tcp_ev)["target"] is None


@pytest.mark.parametrize("text, ok", [("1MB/s", True), ("10TB/s", True), ("46GB/s", True), ("400Gbit/s", True),
                                      ("999kB/s", False), ("10.001TB/s", False), ("0B/s", False),
                                      ("1e999GB/s", False)])
def test_target_range(text, ok):
    if ok:
        assert report.parse_target(text) > 0
    else:
        with pytest.raises(InputError, match=r"outside 1MB/s\.\.10TB/s|not a finite rate"):
            report.parse_target(text)


@pytest.mark.parametrize("rate", [math.nan, math.inf, -46e9, 0.0])
def test_target_not_finite_or_not_positive(rate):
    with pytest.raises(InputError, match="scenario.toml: target"):
        report.check_target(rate, "scenario.toml: target")


def test_a_report_stored_before_a_resource_existed_still_renders():
    # plan records stored by an earlier rdmarig lack the utilisation of resources added since
    # (flow cores, client, socket link): their columns are empty, the rest renders as stored
    from models.report import plan_report, table_rows
    from models.sweep import evaluate_scenario
    from scenarios.schema import load_scenario
    points = plan_report(evaluate_scenario(load_scenario("smbdirect-2x200g")))["points"]
    old = {k: v for k, v in points.items() if not k.startswith(("util_cpu_flows", "util_client", "util_socket"))}
    rows = table_rows(old)
    assert all(r["util_cpu_flows_pct"] is None and r["util_socket_link_pct"] is None for r in rows)
    assert [r["util_links_pct"] for r in rows] == [r["util_links_pct"] for r in table_rows(points)]
