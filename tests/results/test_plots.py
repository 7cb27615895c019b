"""Plots are checked for what they draw: the series built from records, and the lines, bands and
axis labels read back from the matplotlib figure."""

import json
from pathlib import Path

import numpy as np
import pytest

from results.plots import DEFAULT_X, METRICS, build_series, field, figure, metric_value, points, render
from results.record import Record, from_dict
from scenarios.errors import InputError
from scenarios.units import split_unit, unit_header

FIXTURES = Path(__file__).parent / "fixtures"


def _rec(name, size, summary, kind="measured", **params):
    return Record(kind=kind, name=name, params={"io_size_bytes": size, **params}, summary=summary)


def _socket(path, size, gbps):
    return _rec("copy.socket", size, {"median_gbytes_per_s": gbps}, path=path, source="tmpfs", via="loopback")


def _records_of_every_kind():
    """One record of each kind the README's steps create, as their producers write them."""
    return [
        _rec("verbs.write.bw", 65536, {"bw_average_gbytes_per_s": 2.5, "bw_peak_gbytes_per_s": 3.0},
             op="write", num_qps=1),
        _rec("perftest.ib_write_bw", 65536, {"bw_average_gbytes_per_s": 2.4}, op="write", tool="ib_write_bw"),
        _rec("copy.memcpy", 65536, {"median_total_gbytes_per_s": 20.0, "median_per_core_gbytes_per_s": 20.0},
             processes=1),
        _socket("rw", 65536, 1.5),
        Record(kind="modelled", name="plan:x",
               params={"point_paths": ["cpu-copy", "cpu-copy", "zero-copy", "zero-copy"], "swept": {}},
               samples={"io_size_bytes": [65536.0, 1048576.0, 65536.0, 1048576.0],
                        "throughput_gbytes_per_s": [10.0, 20.0, 30.0, 40.0]}),
    ]


def test_field_reads_dotted_paths():
    rec = _socket("rw", 4096, 1.0)
    assert field(rec, "params.io_size_bytes") == 4096
    assert field(rec, "params.nope.deeper") is None
    assert field(rec, "name") == "copy.socket"


def test_throughput_metric_finds_each_kinds_figure_and_keeps_one_unit():
    values = [metric_value(p, "throughput") for p in points(_records_of_every_kind())]
    assert values == [2.5, 2.4, 20.0, 1.5, 10.0, 20.0, 30.0, 40.0]
    key, paths = METRICS["throughput"]
    # a bare unit key (smbd's `gbytes_per_s`) is read like any other with a stem in front of it
    assert {split_unit("x_" + p.rsplit(".", 1)[-1])[1] for p in paths} == {split_unit(key)[1]} == {"GB/s"}


def test_every_record_kind_plots_without_x_including_migrated_format_1():
    """The default x (params.io_size_bytes) exists in every record kind; format-1 files use their
    kind's old key and are migrated on read."""
    old = [from_dict(json.loads((FIXTURES / f).read_text()))
           for f in ("record-v1-verbs.json", "record-v1-copy-socket.json")]
    data = build_series(_records_of_every_kind() + old)
    assert data.records_left_out == 0
    labels = {s.label for s in data.series}
    assert {"verbs.write.bw", "perftest.ib_write_bw", "copy.memcpy", "plan:x path=cpu-copy",
            "plan:x path=zero-copy", "copy.socket path=rw via=loopback", "copy.socket path=sendfile"} == labels
    verbs = next(s for s in data.series if s.label == "verbs.write.bw")
    assert verbs.x == (65536.0, 1048576.0) and verbs.median == (2.5, 0.03)   # new and migrated record
    model = next(s for s in data.series if s.label == "plan:x path=zero-copy")
    assert model.kind == "modelled" and model.x == (65536.0, 1048576.0) and model.median == (30.0, 40.0)


def test_repeated_runs_are_aggregated_per_x_not_zigzagged():
    runs = [_socket("rw", 65536, v) for v in (1.0, 3.0, 2.0)] + [_socket("rw", 1048576, v) for v in (4.0, 6.0)]
    runs += [_socket("splice", 65536, 5.0)]
    data = build_series(runs)
    by_label = {s.label: s for s in data.series}
    assert set(by_label) == {"copy.socket path=rw", "copy.socket path=splice"}   # source, via constant
    rw = by_label["copy.socket path=rw"]
    assert rw.x == (65536.0, 1048576.0)
    assert rw.median == (2.0, 5.0) and rw.low == (1.0, 4.0) and rw.high == (3.0, 6.0) and rw.n == (3, 2)
    assert by_label["copy.socket path=splice"].n == (1,) and not by_label["copy.socket path=splice"].repeated


def test_figure_draws_medians_band_counts_and_units():
    runs = [_socket("rw", 65536, v) for v in (1.0, 3.0, 2.0)] + [_socket("rw", 1048576, v) for v in (4.0, 6.0)]
    runs.append(_rec("copy.memcpy", 65536, {"median_total_gbytes_per_s": 20.0}, processes=1))
    fig = figure(build_series(runs))
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"copy.memcpy", "copy.socket (n=2..3)"}
    xy = lines["copy.socket (n=2..3)"].get_xydata()
    assert xy.tolist() == [[65536.0, 2.0], [1048576.0, 5.0]]          # one point per x: the median
    (band,) = ax.collections                                           # only the repeated series has one
    vertices = band.get_paths()[0].vertices
    assert vertices[:, 1].min() == 1.0 and vertices[:, 1].max() == 6.0
    assert set(np.round(vertices[:, 0])) == {65536.0, 1048576.0}
    assert ax.get_xlabel() == unit_header("io_size_bytes") == "io size [B]"
    assert ax.get_ylabel() == unit_header("throughput_gbytes_per_s") == "throughput [GB/s]"
    assert ax.get_xscale() == "log"


def test_explicit_field_path_and_group():
    runs = [_socket("rw", 65536, 1.0), _socket("splice", 65536, 2.0)]
    data = build_series(runs, DEFAULT_X, "summary.median_gbytes_per_s", ["params.path"])
    assert [(s.label, s.median) for s in data.series] == [("rw", (1.0,)), ("splice", (2.0,))]
    ax = figure(data).axes[0]
    assert ax.get_ylabel() == "median [GB/s]"


def test_modelled_series_dashed_and_swept_axes_split_lines():
    rec = Record(kind="modelled", name="plan:tcp",
                 params={"point_paths": ["splice"] * 4, "swept": {"workload_connections": [1.0, 4.0, 1.0, 4.0]}},
                 samples={"io_size_bytes": [65536.0, 65536.0, 1048576.0, 1048576.0],
                          "throughput_gbytes_per_s": [9.4, 11.7, 11.8, 11.8]})
    data = build_series([rec])
    assert [(s.label, s.median) for s in data.series] == [
        ("plan:tcp workload_connections=1", (9.4, 11.8)), ("plan:tcp workload_connections=4", (11.7, 11.8))]
    assert {ln.get_linestyle() for ln in figure(data).axes[0].get_lines()} == {"--"}


def test_records_without_the_fields_are_counted_and_nothing_to_draw_is_an_error():
    data = build_series([_socket("rw", 65536, 1.0), Record(kind="measured", name="other")])
    assert data.records_used == 1 and data.records_left_out == 1
    with pytest.raises(InputError, match="no stored record"):
        figure(build_series([_socket("rw", 65536, 1.0)], DEFAULT_X, "summary.nothing"))


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG\r\n\x1a\n"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_render_encodes_the_figure(fmt, magic):
    assert render(figure(build_series([_socket("rw", 65536, 1.0)])), fmt).startswith(magic)
