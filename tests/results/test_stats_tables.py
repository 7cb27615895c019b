import json

import numpy as np
import pytest

from results.stats import bootstrap_ci, stability_warning, summarize
from results.tables import Column, Table, render
from scenarios.errors import InputError


def test_summarize_matches_numpy():
    v = [1.0, 2.0, 3.0, 4.0, 100.0]
    s = summarize(v)
    assert s.median == 3.0 and s.min == 1.0 and s.max == 100.0 and s.n == 5
    assert s.mean == pytest.approx(22.0)
    assert s.stdev == pytest.approx(np.std(v, ddof=1))
    assert s.ci_low <= s.median <= s.ci_high
    d = s.as_dict("gbytes_per_s")
    assert d["median_gbytes_per_s"] == 3.0 and "p99_gbytes_per_s" in d


def test_bootstrap_interval_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    few = rng.normal(10, 1, 10)
    many = rng.normal(10, 1, 1000)
    lo1, hi1 = bootstrap_ci(few)
    lo2, hi2 = bootstrap_ci(many)
    assert hi2 - lo2 < hi1 - lo1
    assert lo2 < 10 < hi2


def test_stability_warning():
    assert stability_warning([10, 10.1, 9.9]) is None
    msg = stability_warning([5, 10, 15], what="sendfile 1MiB")
    assert "sendfile 1MiB is unstable" in msg


def _table():
    return Table("t", [Column("path", "copy path"), Column("gbytes_per_s", "throughput [GB/s]", "{:.2f}")],
                 [{"path": "cpu-copy", "gbytes_per_s": 33.456}, {"path": "zero-copy", "gbytes_per_s": None}],
                 notes=["a note"])


def test_markdown_has_units_and_values():
    md = render(_table(), "md")
    assert "throughput [GB/s]" in md and "33.46" in md and "| zero-copy" in md and "- a note" in md


def test_csv_json_html():
    assert render(_table(), "csv").splitlines()[1] == "cpu-copy,33.456"
    doc = json.loads(render(_table(), "json"))
    assert doc["rows"][0]["gbytes_per_s"] == 33.456
    assert "<th>throughput [GB/s]</th>" in render(_table(), "html")


def test_unknown_format():
    with pytest.raises(InputError, match="unknown table format"):
        render(_table(), "xlsx")
