"""Pairwise runs under mpirun/srun (`measure verbs --mpi`): the per-pair bandwidth matrix, its
outliers and the run's aggregate, computed from stored records only.

A run stores one record per pair (its params carry `mpi_run`, the run id, and `initiator_rank`,
`target_rank`) and, when rank 0 gets to the end, one aggregate record per I/O size (name
`mpi.<pair record name>`, `complete` in its summary). A run without an aggregate, or whose
aggregate says `complete: false`, is partial.

Outliers: a pair whose bandwidth is below `tolerance` x the median of the pairs is flagged.
The default 0.93 is ClusterKit's bandwidth tolerance (NVIDIA HPC-X, "Running ClusterKit":
bandwidths below 93 % of the maximum are "bad"); taken against the median here, so that one
unusually fast pair (two ranks on one device) does not make the others look slow.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from results.record import Record
from results.tables import Column, Table
from scenarios.errors import InputError
from scenarios.units import IO_SIZE_KEY, format_size

RUN_KEY = "mpi_run"
METRIC_KEY = "mpi_metric"            # params: the summary key holding a pair's bandwidth
AGGREGATE_PREFIX = "mpi."
DEFAULT_TOLERANCE = 0.93
OUTLIER_MARK = "*"


def is_mpi_pair(rec: Record) -> bool:
    """A pair record of an MPI run (`connection` "mpi <pattern>", rig.launch.mpi_run): one of several
    ends measured at once, no single run's configuration."""
    return str(rec.params.get("connection", "")).startswith("mpi")


@dataclass
class Pair:
    initiator: int
    target: int
    value_gbytes_per_s: float | None
    record_id: str
    round: int | None = None
    outlier: bool = False


@dataclass
class Outliers:
    median_gbytes_per_s: float | None
    threshold_gbytes_per_s: float | None
    flagged: list[bool]


@dataclass
class Matrix:
    run: str
    name: str                         # the pair records' name (verbs.write.bw)
    io_size_bytes: int | None
    ranks: int
    pattern: str
    tolerance: float
    pairs: list[Pair]
    expected: int | None
    hosts: dict[int, str] = field(default_factory=dict)
    devices: dict[int, str] = field(default_factory=dict)
    aggregate: Record | None = None
    outliers: Outliers | None = None

    @property
    def complete(self) -> bool:
        return self.aggregate is not None and self.aggregate.summary.get("complete") is True

    def partial_reason(self) -> str | None:
        if self.aggregate is None:
            return "no aggregate record: the run ended before rank 0 stored it"
        if not self.complete:
            why = self.aggregate.summary.get("partial_reason") or "not every pair was measured"
            return f"{why}"
        return None


def find_outliers(values: Sequence[float], tolerance: float = DEFAULT_TOLERANCE) -> Outliers:
    """Values below tolerance x their median are flagged (an empty list flags nothing)."""
    if not values:
        return Outliers(None, None, [])
    median = statistics.median(values)
    threshold = tolerance * median
    return Outliers(median, threshold, [v < threshold for v in values])


def jain_fairness(values: Sequence[float]) -> float | None:
    """Jain's index (sum x)^2 / (n sum x^2): 1 when all equal, 1/n when one takes everything."""
    square_sum = sum(v * v for v in values)
    return sum(values) ** 2 / (len(values) * square_sum) if values and square_sum > 0 else None


def aggregate_summary(pairs: Iterable[dict[str, Any]], expected: int, tolerance: float,
                      failures: Sequence[str], gone: Sequence[int],
                      ended: str | None = None) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The aggregate of one I/O size: `pairs` are {initiator, target, round, gbytes_per_s}
    (measured pairs only); failures are one sentence each; `ended` says why the run stopped
    early (an interrupt). Returns (summary, samples)."""
    pairs = list(pairs)
    values = [p["gbytes_per_s"] for p in pairs]
    found = find_outliers(values, tolerance)
    by_round: dict[int, float] = defaultdict(float)
    for p in pairs:
        by_round[p.get("round") or 0] += p["gbytes_per_s"]
    sums = [by_round[r] for r in sorted(by_round)]
    complete = len(pairs) == expected and not failures and not gone and not ended
    summary: dict[str, Any] = {
        "complete": complete, "pairs_expected": expected, "pairs_measured": len(pairs),
        "pairs_failed": len(failures), "ranks_gone": sorted(gone),
        "pair_median_gbytes_per_s": found.median_gbytes_per_s,
        "pair_min_gbytes_per_s": min(values) if values else None,
        "pair_max_gbytes_per_s": max(values) if values else None,
        "aggregate_gbytes_per_s": statistics.median(sums) if sums else None,
        "fairness_jain_ratio": jain_fairness(values),
        "tolerance_pct": tolerance * 100,
        "outlier_threshold_gbytes_per_s": found.threshold_gbytes_per_s,
        "outliers": sum(found.flagged),
        "outlier_pairs": [f"{p['initiator']}->{p['target']}" for p, bad in zip(pairs, found.flagged) if bad],
    }
    if not complete:
        parts = [f"{len(pairs)} of {expected} pairs measured"]
        if gone:
            parts.append(f"rank(s) {', '.join(map(str, sorted(gone)))} gone")
        if failures:
            parts.append(f"{len(failures)} pair(s) failed, first: {failures[0]}")
        if ended:
            parts.append(ended)
        summary["partial_reason"] = "; ".join(parts)
        summary["failures"] = list(failures)
    return summary, {"pair_gbytes_per_s": values, "round_sum_gbytes_per_s": sums}


def run_records(records: Iterable[Record], run: str) -> list[Record]:
    """The records of the one run whose id is `run` or starts with it (or of the run the record
    with that id belongs to); InputError when none or several runs match."""
    text = run.strip()
    if not text:
        raise InputError("the run id is empty", "give the run id `measure verbs --mpi` printed, or its first characters")
    records = [r for r in records if isinstance(r.params.get(RUN_KEY), str)]
    mine = [r for r in records if r.params[RUN_KEY].startswith(text)]
    if not mine:                 # a record's id: its run
        runs = {r.params[RUN_KEY] for r in records if r.id.startswith(text)}
        mine = [r for r in records if r.params[RUN_KEY] in runs]
    runs = sorted({r.params[RUN_KEY] for r in mine})
    if not runs:
        raise InputError(f"no run {text!r} under --mpi in the store (and no record of one with that id)",
                         "give the run id `measure verbs --mpi` printed; `rdmarig results list --name mpi` lists the runs")
    if len(runs) > 1:
        raise InputError(f"{text!r} matches {len(runs)} runs ({', '.join(r[:12] for r in runs[:3])}...)",
                         "give more characters of the run id")
    return mine


def matrices(records: Sequence[Record], tolerance: float | None = None) -> list[Matrix]:
    """One matrix per (pair record name, I/O size) of one run's records; the tolerance is the
    run's own (from its aggregate) unless given."""
    aggregates = {(r.name[len(AGGREGATE_PREFIX):], r.params.get(IO_SIZE_KEY)): r
                  for r in records if r.name.startswith(AGGREGATE_PREFIX)}
    groups: dict[tuple[str, Any], list[Record]] = defaultdict(list)
    for r in records:
        if not r.name.startswith(AGGREGATE_PREFIX) and "initiator_rank" in r.params:
            groups[(r.name, r.params.get(IO_SIZE_KEY))].append(r)
    for key in aggregates:
        groups.setdefault(key, [])
    out = []
    for (name, size), recs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        agg = aggregates.get((name, size))
        first = agg or recs[0]
        tol = tolerance if tolerance is not None else \
            (agg.params.get("tolerance_pct", DEFAULT_TOLERANCE * 100) / 100 if agg else DEFAULT_TOLERANCE)
        m = Matrix(run=first.params[RUN_KEY], name=name, io_size_bytes=size, ranks=int(first.params.get("ranks", 0)),
                   pattern=str(first.params.get("pattern", "?")), tolerance=tol, pairs=[],
                   expected=agg.summary.get("pairs_expected") if agg else None, aggregate=agg)
        if agg:
            m.hosts.update({int(k): v for k, v in (agg.params.get("hosts") or {}).items()})
            m.devices.update({int(k): v for k, v in (agg.params.get("devices") or {}).items()})
        for r in recs:
            p = r.params
            m.pairs.append(Pair(int(p["initiator_rank"]), int(p["target_rank"]), _value(r), r.id, p.get("round")))
            m.hosts.setdefault(int(p["initiator_rank"]), str(p.get("initiator_host")))
            m.hosts.setdefault(int(p["target_rank"]), str(p.get("target_host")))
            m.devices.setdefault(int(p["initiator_rank"]), str(p.get("initiator_device")))
            m.devices.setdefault(int(p["target_rank"]), str(p.get("target_device")))
            m.ranks = max(m.ranks, int(p.get("ranks", 0)))
        measured = [p for p in m.pairs if p.value_gbytes_per_s is not None]
        m.outliers = find_outliers([p.value_gbytes_per_s for p in measured], m.tolerance)
        for p, bad in zip(measured, m.outliers.flagged):
            p.outlier = bad
        out.append(m)
    return out


def _value(rec: Record) -> float | None:
    v = rec.summary.get(rec.params.get(METRIC_KEY, ""))
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def table(m: Matrix) -> Table:
    """Rows: the initiating rank; columns: the target rank; a cell: the pair's bandwidth, marked
    with OUTLIER_MARK below the tolerance."""
    cols = [Column("rank", "rank"), Column("host", "host"), Column("device", "device")] + \
        [Column.of(f"to{j}_gbytes_per_s", f"{j}", "{:.3f}") for j in range(m.ranks)]
    rows = [{"rank": i, "host": m.hosts.get(i, "?"), "device": m.devices.get(i, "?")} for i in range(m.ranks)]
    for p in m.pairs:
        if p.value_gbytes_per_s is not None and 0 <= p.initiator < m.ranks and 0 <= p.target < m.ranks:
            rows[p.initiator][f"to{p.target}_gbytes_per_s"] = \
                f"{p.value_gbytes_per_s:.3f} {OUTLIER_MARK}" if p.outlier else p.value_gbytes_per_s
    size = format_size(m.io_size_bytes) if m.io_size_bytes else "?"
    title = f"{m.name}, {size}: run {m.run[:12]} ({m.pattern}, {m.ranks} ranks), row initiates to column"
    o = m.outliers or find_outliers([])
    notes = [f"{len(m.pairs)} pair records" + (f" of {m.expected} expected" if m.expected is not None else "")]
    if o.median_gbytes_per_s is not None:
        flagged = [p for p in m.pairs if p.outlier]
        notes.append(f"median {o.median_gbytes_per_s:.3f} GB/s; {OUTLIER_MARK} below {m.tolerance * 100:g} % of it "
                     f"({o.threshold_gbytes_per_s:.3f} GB/s): " +
                     (", ".join(f"{p.initiator}->{p.target}" for p in flagged) if flagged else "none"))
    reason = m.partial_reason()
    notes.append(f"PARTIAL run: {reason}" if reason else "complete: every pair of the pattern measured")
    return Table(title, cols, rows, notes)
