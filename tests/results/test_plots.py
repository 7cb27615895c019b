import pytest

from results.plots import field, plot_series, series
from results.record import Record
from scenarios.errors import InputError


def _recs():
    out = []
    for name, scale in (("verbs.write", 1.0), ("verbs.read", 0.5)):
        for size in (4096, 65536, 1048576):
            out.append(Record(kind="measured", name=name, params={"size_bytes": size},
                              summary={"median_gbytes_per_s": scale * size / 1048576}))
    out.append(Record(kind="measured", name="other", params={}))
    return out


def test_field_and_series():
    recs = _recs()
    assert field(recs[0], "params.size_bytes") == 4096
    assert field(recs[0], "params.nope.deeper") is None
    lines = series(recs, "params.size_bytes", "summary.median_gbytes_per_s", "name")
    assert set(lines) == {"verbs.write", "verbs.read"}
    assert lines["verbs.read"][-1] == (1048576.0, 0.5)


def test_plot_writes_a_png(tmp_path):
    out = plot_series(_recs(), "params.size_bytes", "summary.median_gbytes_per_s", "name", tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_with_nothing_to_draw():
    with pytest.raises(InputError, match="no stored record"):
        plot_series(_recs(), "params.size_bytes", "summary.nothing", "name", "/tmp/never.png")
