"""The figures of a plan record, drawn from fixture records (tests/results/fixtures/plan-records.jsonl,
stored records as `rdmarig plan` and the measure commands write them) and read back from the
matplotlib figure: every plotted series, ceiling and band against the record's own figures."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from results import plan_plots as pp
from results.plots import build_series, render
from scenarios.errors import InputError
from scenarios.units import GB

MiB = 1024 * 1024


def _pts(rec):
    return rec.summary["report"]["points"]


def _iv(rec):
    return rec.summary["report"]["intervals"]["points"]


def _point(rec, path, size, **swept):
    pts = _pts(rec)
    (i,) = [i for i in range(len(pts["copy_path"])) if pts["copy_path"][i] == path and pts["io_size_bytes"][i] == size
            and all(pts[k][i] == v for k, v in swept.items())]
    return i


def _lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def test_throughput_draws_each_path_its_band_and_both_ceilings(plans):
    fig = pp.throughput(plans.smbd)
    (ax,) = fig.axes
    pts, iv = _pts(plans.smbd), _iv(plans.smbd)
    lines = _lines(ax)
    paths = plans.smbd.params["copy_paths"]
    assert set(lines) == set(paths) | {"links ceiling", "PCIe ceiling"}
    sizes = [65536.0, 1.0 * MiB, 8.0 * MiB]
    for path in paths:
        ii = [_point(plans.smbd, path, s) for s in sizes]
        assert lines[path].get_xydata().tolist() == [[s, pts["throughput_bytes_per_s"][i] / GB] for s, i in zip(sizes, ii)]
    # ceilings: per size the most any path passes through the links / PCIe
    for name, key in (("links ceiling", "capacity_links_bytes_per_s"), ("PCIe ceiling", "capacity_pcie_bytes_per_s")):
        expected = [max(pts[key][i] for i in range(len(pts[key])) if pts["io_size_bytes"][i] == s) / GB for s in sizes]
        assert lines[name].get_ydata().tolist() == pytest.approx(expected)
    assert lines["links ceiling"].get_ydata()[-1] == pytest.approx(46.29, abs=0.01)     # 2x200G, MTU 1500
    # one band per path: it spans the 5th..95th percentile of the draws
    assert len(ax.collections) == len(paths)
    for band, path in zip(ax.collections, paths):
        ii = [_point(plans.smbd, path, s) for s in sizes]
        y = band.get_paths()[0].vertices[:, 1]
        assert y.min() == pytest.approx(min(iv["throughput_p05_bytes_per_s"][i] for i in ii) / GB)
        assert y.max() == pytest.approx(max(iv["throughput_p95_bytes_per_s"][i] for i in ii) / GB)
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "throughput [GB/s]"
    assert "200 draws" in ax.get_title()


def test_one_row_of_axes_per_swept_value(plans):
    fig = pp.throughput(plans.tcp)
    assert [ax.get_title().split("(")[-1].split(")")[0] for ax in fig.axes] == ["connections=1", "connections=4"]
    pts = _pts(plans.tcp)
    one = _lines(fig.axes[0])["cpu-copy"].get_ydata().tolist()
    assert one == [pts["throughput_bytes_per_s"][_point(plans.tcp, "cpu-copy", s, workload_connections=1.0)] / GB
                   for s in (65536.0, 8.0 * MiB)]


def test_bottlenecks_bars_are_the_utilisation_of_every_resource(plans):
    fig = pp.bottlenecks(plans.smbd)                     # default: the largest I/O size
    (ax,) = fig.axes
    pts, iv = _pts(plans.smbd), _iv(plans.smbd)
    bars = {c.get_label(): c for c in ax.containers if hasattr(c, "patches")}
    assert list(bars) == [name for _, name in pp.RESOURCES]
    paths = plans.smbd.params["copy_paths"]
    for key, name in pp.RESOURCES:
        heights = [p.get_height() for p in bars[name].patches]
        expected = []
        for path in paths:
            u = pts[f"util_{key}_ratio"][_point(plans.smbd, path, 8.0 * MiB)]
            expected.append(u * 100 if u is not None and math.isfinite(u) else 0.0)
        assert heights == pytest.approx(expected), name
    zc = paths.index("zero-copy")
    assert bars["links"].patches[zc].get_height() == pytest.approx(100)        # the links bind zero-copy
    # whiskers: 5th..95th percentile of the utilisation
    cpu = bars["serving cores"]
    segments = cpu.errorbar.lines[2][0].get_segments()
    i = _point(plans.smbd, "dma-offload-chan", 8.0 * MiB)
    lo, hi = segments[paths.index("dma-offload-chan")][:, 1]
    assert (lo, hi) == pytest.approx((iv["util_cpu_serving_p05_ratio"][i] * 100, iv["util_cpu_serving_p95_ratio"][i] * 100))
    assert [t.get_text() for t in ax.get_xticklabels()] == paths
    assert pp.bottlenecks(plans.smbd, 65536).axes[0].get_title().startswith("utilisation of every resource at 64KiB")
    with pytest.raises(InputError, match="--io-size 4MiB: the plan has no point of that size; use one of 64KiB, 1MiB, 8MiB"):
        pp.bottlenecks(plans.smbd, 4.0 * MiB)


def test_needs_draws_the_stored_curve(plans):
    fig = pp.needs(plans.smbd)
    cores_ax, dma_ax = fig.axes
    curve = plans.smbd.summary["report"]["needs"]
    rates = [r / GB for r in curve["rates_bytes_per_s"]]
    lines = _lines(cores_ax)
    for path in plans.smbd.params["copy_paths"]:
        i = _point(plans.smbd, path, 8.0 * MiB)
        assert lines[path].get_xydata().tolist() == [[r, c] for r, c in zip(rates, curve["cores"][i])]
    i = _point(plans.smbd, "dma-offload-chan", 8.0 * MiB)
    dma = _lines(dma_ax)
    assert dma["dma-offload-chan"].get_ydata().tolist() == curve["dma_engines"][i]
    assert "dma-offload: no engine reachable" in dma and len(dma["dma-offload: no engine reachable"].get_xdata()) == 0
    # the x markers sit where a target is out of reach
    crosses = [ln for ln in cores_ax.get_lines() if ln.get_marker() == "x" and len(ln.get_xdata())]
    unreachable = sum(not ok for p in plans.smbd.params["copy_paths"] for ok in curve["reachable"][_point(plans.smbd, p, 8.0 * MiB)])
    assert sum(len(ln.get_xdata()) for ln in crosses) == unreachable > 0


def test_vs_measured_places_each_matched_record_and_the_identity_line(plans):
    found, left_out = pp.matches(plans.smbd.summary["report"], plans.measured)
    assert sorted(m.record_id for m in found) == ["fixture-smbd-0", "fixture-smbd-1", "fixture-smbd-2"]
    assert left_out == 0                   # smbd.write (a READ plan) and copy.socket (no splice here) are not candidates
    # a pair of an MPI run (one of several clients measured at once) is no plan point's measurement
    first = next(r for r in plans.measured if r.id == "fixture-smbd-0")
    mpi_pair = dataclasses.replace(first, id="mpi-pair", params={**first.params, "connection": "mpi incast"})
    again, _ = pp.matches(plans.smbd.summary["report"], [*plans.measured, mpi_pair])
    assert sorted(m.record_id for m in again) == sorted(m.record_id for m in found)
    fig = pp.vs_measured(plans.smbd, plans.measured)
    (ax,) = fig.axes
    identity = _lines(ax)["model = measured"]
    assert identity.get_xdata().tolist() == identity.get_ydata().tolist()
    drawn = sorted(tuple(xy) for c in ax.collections if c.get_label() in ("cpu-copy", "zero-copy")
                   for xy in c.get_offsets().tolist())
    pts = _pts(plans.smbd)
    expected = sorted((r.summary["gbytes_per_s"], pts["throughput_bytes_per_s"][_point(plans.smbd, r.params["copy"],
                                                                                      r.params["io_size_bytes"])] / GB)
                      for r in plans.measured if r.name == "smbd.read")
    assert np.allclose(drawn, expected, rtol=1e-12)


def test_a_measurement_that_fits_two_points_is_left_out_and_none_is_an_error(plans):
    # copy.socket splice at 64 KiB has no `connections`: both swept points fit, so neither is taken
    found, left_out = pp.matches(plans.tcp.summary["report"], plans.measured)
    assert found == [] and left_out == 1
    with pytest.raises(InputError, match="no stored measured record matches"):
        pp.vs_measured(plans.tcp, plans.measured)


def test_efficiency_is_payload_per_busy_core(plans):
    fig = pp.efficiency(plans.smbd, plans.measured)
    (ax,) = fig.axes
    pts = _pts(plans.smbd)
    lines = _lines(ax)
    assert "dma-offload" not in lines                          # nothing flows: no figure per core
    for path in ("cpu-copy", "zero-copy"):
        i = _point(plans.smbd, path, 8.0 * MiB)
        assert lines[path].get_ydata()[-1] == pytest.approx(8 / pts["cpu_s_per_gb"][i])
        # the same figure from the point's throughput and cores busy
        assert lines[path].get_ydata()[-1] == pytest.approx(pts["throughput_bytes_per_s"][i] * 8 / GB / pts["cores_busy"][i])
    squares = {c.get_label(): c.get_offsets().tolist() for c in ax.collections}
    assert squares["zero-copy measured"] == [[8.0 * MiB, pytest.approx(8 / 0.004)]]
    assert sorted(squares["cpu-copy measured"]) == [[1.0 * MiB, pytest.approx(8 / 0.19)], [8.0 * MiB, pytest.approx(8 / 0.17)]]


def test_results_plot_reads_the_points_of_a_stored_plan_report(plans):
    data = build_series([plans.smbd])
    pts = _pts(plans.smbd)
    by_label = {s.label: s for s in data.series}
    zc = by_label["plan:smbdirect-2x200g path=zero-copy"]
    assert zc.kind == "modelled" and zc.x == (65536.0, 1.0 * MiB, 8.0 * MiB)
    assert zc.median == pytest.approx([pts["throughput_bytes_per_s"][_point(plans.smbd, "zero-copy", s)] / GB for s in zc.x])
    swept = build_series([plans.tcp])
    assert {s.label for s in swept.series} >= {"plan:smb-tcp-100g path=cpu-copy workload_connections=1"}


@pytest.mark.parametrize("kind", pp.KINDS)
def test_every_figure_renders(plans, kind):
    png = render(pp.draw(kind, plans.smbd, plans.measured), "png")
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert render(pp.draw(kind, plans.smbd, plans.measured), "svg").startswith(b"<?xml")


def test_a_record_without_a_plan_report_is_refused(plans):
    with pytest.raises(InputError, match="holds no plan report"):
        pp.throughput(plans.measured[0])
    with pytest.raises(InputError, match="unknown figure 'pie'"):
        pp.draw("pie", plans.smbd)


def test_colours_follow_the_copy_path_in_every_figure(plans):
    t = _lines(pp.throughput(plans.smbd).axes[0])
    e = _lines(pp.efficiency(plans.smbd).axes[0])
    for path in ("cpu-copy", "zero-copy", "dma-offload-chan"):
        assert np.allclose(t[path].get_color(), e[path].get_color())
