"""results/compare.py and results.stats.compare_samples: the change between two runs, its interval,
significance, and the flags that say when two runs are not like with like."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy import stats as sp_stats

from results import compare as cmp
from results.record import Record
from results.stats import compare_samples
from scenarios.errors import InputError


def test_a_clear_shift_is_significant_and_its_interval_holds_it():
    rng = np.random.default_rng(5)
    a, b = rng.normal(10, 0.2, 8), rng.normal(11, 0.2, 8)
    d = compare_samples(a, b)
    assert d.significant is True and d.low < 1.0 < d.high and d.low > 0
    assert d.change == pytest.approx(np.median(b) - np.median(a)) and d.ratio == pytest.approx(d.change / np.median(a))
    assert d.p_value == pytest.approx(sp_stats.ttest_ind(b, a, equal_var=False).pvalue)


def test_noise_is_not_significant_and_one_value_says_nothing():
    rng = np.random.default_rng(6)
    d = compare_samples(rng.normal(10, 1, 6), rng.normal(10, 1, 6))
    assert d.significant is False and d.low < 0 < d.high and d.p_value > 0.05
    one = compare_samples([1.0], [1.2])
    assert one.significant is None and math.isnan(one.p_value) and one.change == pytest.approx(0.2)


def _socket(values, host="h1", kernel="6.1", extra=None):
    return Record(kind="measured", name="copy.socket", params={"path": "rw", "io_size_bytes": 65536},
                  samples={"gbytes_per_s": list(values), "total_cpu_s_per_gb": [0.5] * len(values)},
                  summary={"median_gbytes_per_s": float(np.median(values)), "median_total_cpu_s_per_gb": 0.5,
                           "stability_warning": None, "call_overhead_s": 1e-6, **(extra or {})},
                  provenance={"host": host, "kernel": kernel, "rdmarig": "0.1.0", "git_sha": "abc"})


def test_measured_records_compare_every_shared_series_and_flag_other_hosts():
    a = _socket([2.4, 2.5, 2.6, 2.5])
    b = _socket([2.9, 3.0, 3.1, 3.0], host="h2", kernel="6.12", extra={"kernel_copied": True})
    b.params["io_size_bytes"] = 1048576
    result = cmp.compare_measured(a, b)
    rows = {r["metric"]: r for r in result.rows}
    assert set(rows) == {"gbytes_per_s", "total_cpu_s_per_gb", "call_overhead_s"}   # no statistic of a series twice
    g = rows["gbytes_per_s"]
    assert (g["a"], g["b"], g["n"], g["significant"], g["unit"]) == (2.5, 3.0, "4 vs 4", "yes", "GB/s")
    assert g["change_pct"] == pytest.approx(20.0) and g["interval_low"] > 0
    assert rows["total_cpu_s_per_gb"]["significant"] == "no"          # equal, no spread
    assert rows["call_overhead_s"]["significant"] == "n/a (no repetitions)"
    assert "different hosts: h1 (A) vs h2 (B)" in result.flags
    assert "different kernels: 6.1 (A) vs 6.12 (B)" in result.flags
    assert "different setting io_size_bytes: 64KiB (A) vs 1MiB (B)" in result.flags
    assert not any("rdmarig" in f or "git" in f for f in result.flags)      # the same rig on both sides


def test_records_that_share_nothing_are_refused():
    with pytest.raises(InputError, match="share no numeric figure"):
        cmp.compare_measured(Record(kind="measured", name="x", summary={"a_s": 1.0}),
                             Record(kind="measured", name="y", summary={"b_s": 1.0}))


def test_a_plan_against_itself_changes_nothing(plans):
    report = plans.smbd.summary["report"]
    result = cmp.compare_plans(report, report, "A", "B")
    assert len(result.rows) == len(report["points"]["copy_path"])
    assert all(r["significant"] == "no" for r in result.rows)
    assert all(r["change_pct"] in (0.0, None) for r in result.rows)


def test_a_plan_change_is_significant_where_the_intervals_part(plans):
    a = plans.smbd.summary["report"]
    b = copy.deepcopy(a)
    pts, iv = b["points"], b["intervals"]["points"]
    for i, path in enumerate(pts["copy_path"]):
        if path == "cpu-copy":                     # cpu-copy 30 % faster, its interval with it
            for key in ("throughput_bytes_per_s",):
                pts[key][i] *= 1.3
            for q in ("p05", "p50", "p95"):
                iv[f"throughput_{q}_bytes_per_s"][i] *= 1.3
    rows = cmp.compare_plans(a, b, "A", "B").rows
    for r in rows:
        if r["copy_path"] == "cpu-copy":
            lo_a, hi_a = (float(x) for x in r["a_interval"].split("-"))
            lo_b, hi_b = (float(x) for x in r["b_interval"].split("-"))
            assert r["change_pct"] == pytest.approx(30.0)
            assert r["significant"] == ("yes" if hi_a < lo_b else "no")
        elif r["a_gbytes_per_s"]:
            assert r["significant"] == "no" and r["change_pct"] == 0.0
    assert any(r["significant"] == "yes" for r in rows)
    assert [r["io_size"] for r in rows][:5] == ["64KiB"] * 5


def test_plan_flags_name_the_setting_that_differs(plans):
    a = plans.smbd.summary["report"]
    b = copy.deepcopy(a)
    b["setting"]["platform"] = "epyc-9654-cx7"
    b["setting"]["cores"] = 96
    assert cmp.setting_flags(a, b) == ["different cores: 52 (A) vs 96 (B)",
                                       "different platform: xeon-8470-cx7 (A) vs epyc-9654-cx7 (B)"]
