"""The matrix of a run under --mpi, from stored records: every pair in its cell, outliers below the
tolerance of the median flagged, the aggregate and what makes a run partial."""

from __future__ import annotations

import pytest

from results.matrix import (AGGREGATE_PREFIX, DEFAULT_TOLERANCE, OUTLIER_MARK, aggregate_summary, find_outliers,
                            jain_fairness, matrices, run_records, table)
from results.record import Record
from results.tables import render
from scenarios.errors import InputError

RUN = "f00d" * 8


def _pair(i, t, gbs, size=65536, rnd=0, run=RUN):
    return Record(kind="measured", name="verbs.write.bw",
                  params={"mpi_run": run, "initiator_rank": i, "target_rank": t, "ranks": 4, "round": rnd,
                          "pattern": "all-pairs", "io_size_bytes": size, "mpi_metric": "bw_average_gbytes_per_s",
                          "initiator_host": f"h{i}", "target_host": f"h{t}", "initiator_device": "rxe0",
                          "target_device": "rxe1"},
                  summary={"bw_average_gbytes_per_s": gbs, "integrity_ok": True})


def _aggregate(values, expected=6, size=65536, tolerance=DEFAULT_TOLERANCE, failures=(), gone=()):
    summary, samples = aggregate_summary(values, expected, tolerance, list(failures), list(gone))
    return Record(kind="measured", name=AGGREGATE_PREFIX + "verbs.write.bw", summary=summary, samples=samples,
                  params={"mpi_run": RUN, "ranks": 4, "pattern": "all-pairs", "io_size_bytes": size,
                          "tolerance_pct": tolerance * 100, "hosts": {str(r): f"h{r}" for r in range(4)},
                          "devices": {"0": "rxe0", "1": "rxe1", "2": "rxe0", "3": "rxe1"}})


ROUNDS = [(0, 1, 0), (2, 3, 0), (0, 2, 1), (1, 3, 1), (0, 3, 2), (1, 2, 2)]
VALUES = [1.0, 1.02, 0.98, 1.01, 0.5, 0.99]          # 0->3 is slow


def _run(values=VALUES, **agg):
    pairs = [_pair(i, t, v, rnd=r) for (i, t, r), v in zip(ROUNDS, values)]
    rows = [{"initiator": i, "target": t, "round": r, "gbytes_per_s": v} for (i, t, r), v in zip(ROUNDS, values)]
    return pairs, _aggregate(rows, **agg)


def test_outliers_are_below_the_tolerance_of_the_median():
    o = find_outliers([1.0, 1.0, 0.93, 0.92, 2.0], 0.93)
    assert o.median_gbytes_per_s == 1.0 and o.threshold_gbytes_per_s == pytest.approx(0.93)
    assert o.flagged == [False, False, False, True, False]          # the fast one is not an outlier
    assert find_outliers([]).flagged == [] and find_outliers([]).median_gbytes_per_s is None


def test_jain_fairness():
    assert jain_fairness([2.0, 2.0, 2.0]) == pytest.approx(1.0)
    assert jain_fairness([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert jain_fairness([]) is None and jain_fairness([0.0]) is None


def test_aggregate_of_a_complete_run():
    pairs, agg = _run()
    s = agg.summary
    assert s["complete"] and s["pairs_measured"] == s["pairs_expected"] == 6 and s["outliers"] == 1
    assert s["outlier_pairs"] == ["0->3"] and s["tolerance_pct"] == pytest.approx(93)
    assert s["pair_min_gbytes_per_s"] == 0.5 and s["pair_max_gbytes_per_s"] == 1.02
    # concurrent pairs add up per round; the aggregate is the median round
    assert agg.samples["round_sum_gbytes_per_s"] == pytest.approx([2.02, 1.99, 1.49])
    assert s["aggregate_gbytes_per_s"] == pytest.approx(1.99)
    assert "partial_reason" not in s


def test_aggregate_of_a_partial_run_says_why():
    summary, _ = aggregate_summary([{"initiator": 0, "target": 1, "round": 0, "gbytes_per_s": 1.0}], 6,
                                   0.93, ["1->3: PollTimeout"], [3])
    assert not summary["complete"]
    assert summary["partial_reason"] == "1 of 6 pairs measured; rank(s) 3 gone; 1 pair(s) failed, first: 1->3: PollTimeout"


def test_matrix_has_every_pair_in_its_cell_and_flags_the_outlier():
    pairs, agg = _run()
    [m] = matrices(pairs + [agg])
    assert m.complete and m.ranks == 4 and m.expected == 6 and m.partial_reason() is None
    assert {(p.initiator, p.target): p.outlier for p in m.pairs}[(0, 3)] is True
    assert sum(p.outlier for p in m.pairs) == 1
    text = render(table(m), "md")
    row0 = next(line for line in text.splitlines() if line.startswith("|    0 |"))
    cells = [c.strip() for c in row0.split("|")[1:-1]]
    assert cells == ["0", "h0", "rxe0", "-", "1.000", "0.980", f"0.500 {OUTLIER_MARK}"]
    assert "3 [GB/s]" in text and "complete: every pair of the pattern measured" in text
    assert f"{OUTLIER_MARK} below 93 % of it (0.925 GB/s): 0->3" in text


def test_tolerance_from_the_run_or_given():
    pairs, agg = _run(tolerance=0.4)
    assert not any(p.outlier for p in matrices(pairs + [agg])[0].pairs)
    assert sum(p.outlier for p in matrices(pairs + [agg], tolerance=0.99)[0].pairs) == 2   # 0.5, 0.98 < 0.985


def test_a_run_without_aggregate_or_with_a_partial_one_is_partial():
    pairs, _ = _run()
    [m] = matrices(pairs[:4])
    assert not m.complete and m.partial_reason() == "no aggregate record: the run ended before rank 0 stored it"
    assert "PARTIAL run: no aggregate record" in render(table(m), "md")
    _, agg = _run(failures=["0->3: gone"], gone=[3])
    [m] = matrices(pairs[:4] + [agg])
    assert not m.complete and "rank(s) 3 gone" in m.partial_reason()


def test_one_matrix_per_size():
    pairs = [_pair(0, 1, 1.0, size=4096), _pair(0, 1, 2.0, size=1 << 20)]
    ms = matrices(pairs)
    assert [(m.io_size_bytes, m.pairs[0].value_gbytes_per_s) for m in ms] == [(4096, 1.0), (1 << 20, 2.0)]
    assert "4KiB" in table(ms[0]).title and "1MiB" in table(ms[1]).title


def test_run_records_by_run_prefix_or_record_id():
    a, b = _pair(0, 1, 1.0), _pair(0, 1, 1.0, run="beef" * 8)
    other = Record(kind="measured", name="copy.memcpy")
    assert run_records([a, b, other], "f00d") == [a]
    assert run_records([a, b, other], b.id[:20]) == [b]
    with pytest.raises(InputError, match="matches 2 runs"):
        run_records([a, _pair(0, 1, 1.0, run="f00e" * 8)], "f00")
    with pytest.raises(InputError, match="no run 'x'"):
        run_records([a, other], "x")
