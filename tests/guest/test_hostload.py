"""rig.guest.hostload: the host's /proc/stat CPU line, the shares over a window, and the spooled
records' provenance annotated with the span since the record before each."""

import datetime as dt

from results.record import Record, from_json
from rig.guest import hostload


def test_the_cpu_line_splits_into_busy_steal_and_total(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 20 800 10 3 2 60 0 0\ncpu0 1 2 3 4\n")
    assert hostload.read_cpu_line(str(stat)) == (130, 60, 1000)
    assert hostload.read_cpu_line(str(tmp_path / "absent")) is None
    other = tmp_path / "other"
    other.write_text("intr 5 1 2\n")               # not the all-CPUs line first: nothing to read
    assert hostload.read_cpu_line(str(other)) is None
    busy, steal, total = hostload.read_cpu_line()          # this host's own
    assert 0 <= busy <= total and 0 <= steal <= total


def test_window_takes_the_samples_around_it():
    samples = [(0.0, 0, 0, 0), (1.0, 50, 0, 100), (2.0, 100, 50, 200), (3.0, 110, 50, 300)]
    assert hostload.window(samples, 1.0, 2.0) == {"busy_fraction": 0.5, "steal_fraction": 0.5, "window_s": 1.0}
    assert hostload.window(samples, 0.5, 2.5) == {"busy_fraction": 0.3667, "steal_fraction": 0.1667, "window_s": 3.0}
    assert hostload.window(samples, -1.0, 2.0) is None and hostload.window(samples, 1.0, 4.0) is None


def test_spooled_records_get_the_span_since_the_record_before(tmp_path):
    t0 = dt.datetime(2026, 12, 1, 17, 0, 0, tzinfo=dt.timezone.utc).timestamp()
    samples = [(t0 + i, 10 * i, (5 * i if i > 5 else 0), 20 * i) for i in range(13)]
    for name, at in (("b", 10.0), ("a", 4.0)):
        when = dt.datetime.fromtimestamp(t0 + at, dt.timezone.utc).isoformat()
        rec = Record(kind="measured", name=f"x.{name}", params={}, summary={}, provenance={"host": "g"}, created=when)
        (tmp_path / f"{name}.json").write_text(rec.to_json())
    (tmp_path / "junk.json").write_text("not a record")
    assert hostload.annotate_spool(tmp_path, samples, t0) == 2
    a = from_json((tmp_path / "a.json").read_text()).provenance
    b = from_json((tmp_path / "b.json").read_text()).provenance
    assert a["host"] == "g"
    assert a["host_cpu_under_guest"]["steal_fraction"] == 0 and a["host_cpu_under_guest"]["window_s"] == 4.0
    # b: from a's time (4 s) to its own (10 s): steal 5 x 10 - 0 over 20 x 6 jiffies
    assert b["host_cpu_under_guest"]["steal_fraction"] == round(50 / 120, 4)
    assert b["host_cpu_under_guest"]["busy_fraction"] == 0.5
