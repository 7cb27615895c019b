"""results/report.py from fixture records: the verdicts, the fleet line and the sources say what the
record holds, and the HTML is self-contained (images inlined, no script, nothing to fetch)."""

from __future__ import annotations

import base64
import math
import re

import pytest

from results import report as html_report
from rig.cli.plan import tables

MiB = 1024 * 1024


def _report(rec):
    return rec.summary["report"]


def test_verdicts_name_what_binds_the_rate_its_interval_and_what_the_target_takes(plans):
    rep = _report(plans.smbd)
    pts, iv, target = rep["points"], rep["intervals"]["points"], rep["target"]
    best = html_report.best_points(rep)
    assert set(best) == set(plans.smbd.params["copy_paths"])
    by_path = dict(zip(plans.smbd.params["copy_paths"], html_report.verdicts(rep)))
    i = best["cpu-copy"]
    assert pts["io_size_bytes"][i] == 8 * MiB and pts["binding"][i] == "cpu-serving"
    assert by_path["cpu-copy"] == (
        f"cpu-copy: the 4 serving cores bind at {pts['throughput_bytes_per_s'][i] / 1e9:.1f} GB/s "
        f"[{iv['throughput_p05_bytes_per_s'][i] / 1e9:.1f}-{iv['throughput_p95_bytes_per_s'][i] / 1e9:.1f}] with 8MiB I/Os; "
        f"46.0 GB/s takes {target['points']['serving_cores'][i]:.0f} serving cores, "
        f"{target['points']['links'][i]:.0f} links on {target['points']['nics'][i]:.0f} NIC")
    assert by_path["zero-copy"].startswith("zero-copy: the 2x200Gbit/s links bind at 46.3 GB/s")
    assert by_path["zero-copy"].endswith("46.0 GB/s is reached as it is")
    assert by_path["dma-offload"] == "dma-offload: nothing flows at any I/O size: no DMA engine reachable via async_memcpy"
    j = best["dma-offload-chan"]
    if "," in iv["binds"][j]:                      # a split binding is said with its shares
        assert f"({iv['binds'][j]} of the draws)" in by_path["dma-offload-chan"]


def test_binding_phrases_take_their_counts_from_the_setting():
    setting = {"links": "2x200Gbit/s", "io_cores": 8, "connections": 4, "async_workers": 6, "cores": 52,
               "outstanding_per_connection": 32}
    assert html_report.binding_phrase("cpu-serving", setting) == "the 4 serving cores bind"
    assert html_report.binding_phrase("cpu-workers", setting) == "the 6 async worker cores bind"
    assert html_report.binding_phrase("pipeline", setting) == "the 128 I/Os in flight bind"
    assert html_report.binding_phrase("pcie", setting) == "PCIe binds"


def test_fleet_is_the_servers_for_an_aggregate_rate_per_path(plans):
    rep = _report(plans.smbd)
    pts, iv = rep["points"], rep["intervals"]["points"]
    lines = {f.path: f for f in html_report.fleet(rep, 1e12)}
    for path, i in html_report.best_points(rep).items():
        X = pts["throughput_bytes_per_s"][i]
        if X == 0:
            assert lines[path].servers is None
            continue
        assert lines[path].servers == math.ceil(1e12 / X)
        assert lines[path].low == math.ceil(1e12 / iv["throughput_p95_bytes_per_s"][i])
        assert lines[path].high == math.ceil(1e12 / iv["throughput_p05_bytes_per_s"][i])
        assert lines[path].low <= lines[path].servers <= lines[path].high
    assert lines["zero-copy"].servers == 22                      # 1 TB/s at 46.3 GB/s per server
    text = html_report.fleet_text(rep, 1e12)
    assert text.startswith("1000 GB/s of SMB2 READ payload takes") and "dma-offload: none (nothing flows)" in text


def test_sources_cite_every_figure_and_its_spread(plans):
    rows = html_report.sources(plans.smbd)
    assert [r["figure"] for r in rows] == sorted(plans.smbd.params["platform_sources"])
    smb = next(r for r in rows if r["figure"] == "cpu.smb_request_time")
    assert smb["source"].startswith("assumption:") and smb["spread"] == "log 2us..20us" and smb["spread_source"]
    assert next(r for r in rows if r["figure"] == "cpu.cores")["spread"] == ""


def test_the_html_is_self_contained(plans):
    rep = _report(plans.smbd)
    doc = html_report.build(plans.smbd, tables(rep, "compact"), tables(rep, "machine"), plans.measured)
    assert doc.figures == [k for k, _ in html_report.FIGURES]      # vs-measured too: smbd.read records match
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', doc.html)
    assert len(images) == len(doc.figures)
    for data, kind in zip(images, doc.figures):
        assert base64.b64decode(data) == doc.files[f"{kind}.png"]
    assert "<script" not in doc.html.lower()
    assert not re.search(r'(src|href)="(?!data:)', doc.html)        # nothing to fetch
    assert not re.search(r"https?://", doc.html.replace(plans.smbd.params["platform_sources"]["nic.ports"], ""))
    for heading in ("verdict", "fleet", "figures", "capacity", "what-it-takes", "setting", "sources", "notes"):
        assert f'<h2 id="{heading}">' in doc.html
    assert doc.html.count("<tr>") > len(rep["points"]["copy_path"]) * 2
    assert set(doc.files) == {f"{k}.{e}" for k in doc.figures for e in ("png", "svg")} | {
        "plan-smbdirect-2x200g.csv", "plan-smbdirect-2x200g-target.csv", "sources.csv"}
    csv_head = doc.files["plan-smbdirect-2x200g.csv"].decode().splitlines()[0]
    assert csv_head.startswith("I/O size [B],copy path,throughput [GB/s],throughput p05 [GB/s]")


def test_a_figure_that_has_nothing_to_draw_is_said_not_fatal(plans):
    rep = _report(plans.tcp)
    doc = html_report.build(plans.tcp, tables(rep, "compact"), (), plans.measured, svg=False)
    assert "vs-measured" not in doc.figures and "no stored measured record matches" in doc.left_out["vs-measured"]
    assert "Model vs measured: no stored measured record matches" in doc.html


@pytest.mark.parametrize("rate", [1e9, 1e12, 1e15])
def test_fleet_rates(plans, rate):
    assert all(f.servers is None or f.servers >= 1 for f in html_report.fleet(_report(plans.smbd), rate))
