"""Two runs side by side (`rdmarig results compare A B`): per metric the change, its interval and
whether it is beyond the noise; differences of provenance (host, kernel, rig version) flagged.

    compare_measured(a, b)       two measured records: every series both hold in repetitions
                                 (bootstrap interval of the change of the median, Welch's t-test);
                                 numeric summary figures that are not statistics of a series: the change
    compare_plans(a, b, ...)     two plan reports (records, or scenarios / platforms evaluated live):
                                 per point the change of the throughput, significant when the two
                                 90 % intervals of the model do not overlap
    flags(a, b)                  what differs in provenance and settings, one sentence each
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from results.record import Record
from results.stats import compare_samples
from scenarios.errors import InputError
from scenarios.params import unit_key
from scenarios.units import format_size, split_unit, to_gbytes_per_s

# provenance that makes two measurements not like with like, and how a flag names it
PROVENANCE = (("host", "hosts"), ("kernel", "kernels"), ("cpu_model", "CPUs"), ("rdmarig", "rdmarig versions"),
              ("git_sha", "rig versions (git)"), ("guest_accel", "guest accelerations"), ("rdma_core", "rdma-core versions"))
# prefixes of the statistics a summary holds of a series (`median_gbytes_per_s` of samples `gbytes_per_s`)
_STATS = ("median_", "mean_", "stdev_", "min_", "max_", "p01_", "p99_", "p999_", "ci_low_", "ci_high_")
CONFIDENCE = 0.95


@dataclass
class Comparison:
    title: str
    rows: list[dict[str, Any]]
    flags: list[str] = field(default_factory=list)       # what makes A and B not like with like
    kind: str = "measured"          # measured | modelled
    notes: list[str] = field(default_factory=list)       # how the columns are computed


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _series(rec: Record) -> dict[str, list[float]]:
    return {k: [float(x) for x in v if _number(x)] for k, v in rec.samples.items() if isinstance(v, list)}


def _label(rec: Record) -> str:
    return f"{rec.id[:12]} ({rec.name})"


def flags(a: Record, b: Record, params: bool = True) -> list[str]:
    """One sentence per difference that makes A and B not like with like (`params`: their settings too)."""
    out = []
    for key, what in PROVENANCE:
        va, vb = a.provenance.get(key), b.provenance.get(key)
        if va != vb and (va is not None or vb is not None):
            out.append(f"different {what}: {va} (A) vs {vb} (B)")
    if a.name != b.name:
        out.append(f"different measurements: {a.name} (A) vs {b.name} (B)")
    for key in sorted(set(a.params) | set(b.params)) if params else []:
        va, vb = a.params.get(key), b.params.get(key)
        if va != vb and not isinstance(va, (dict, list)) and not isinstance(vb, (dict, list)):
            out.append(f"different setting {key}: {_show(key, va)} (A) vs {_show(key, vb)} (B)")
    sha_a, sha_b = (a.scenario or {}).get("sha256"), (b.scenario or {}).get("sha256")
    if sha_a != sha_b and sha_a and sha_b:
        out.append("different scenario files (sha256 differ)")
    if a.params.get("platform_sha256") != b.params.get("platform_sha256") and a.kind == b.kind == "modelled":
        out.append("different platform files (sha256 differ)")
    return out


def _show(key: str, value: Any) -> str:
    return format_size(value) if key.endswith("_bytes") and _number(value) else str(value)


def compare_measured(a: Record, b: Record) -> Comparison:
    """Every series both records hold (repetitions): medians, the change, its bootstrap interval,
    Welch's p; then every numeric summary figure both hold that is not a statistic of a series."""
    rows = []
    sa, sb = _series(a), _series(b)
    shared = [k for k in sa if k in sb and sa[k] and sb[k]]
    for key in shared:
        d = compare_samples(sa[key], sb[key], CONFIDENCE)
        rows.append(_row(key, d.median_a, d.median_b, f"{d.n_a} vs {d.n_b}", (d.low, d.high),
                         d.p_value, d.significant))
    derived = {f"{p}{k}" for k in shared for p in _STATS}
    for key in a.summary:
        va, vb = a.summary.get(key), b.summary.get(key)
        if key in derived or key in sa or not (_number(va) and _number(vb)):
            continue
        rows.append(_row(key, float(va), float(vb), "1 vs 1", None, math.nan, None))
    if not rows:
        raise InputError(f"records {a.id[:12]} and {b.id[:12]} share no numeric figure",
                         "compare two records of the same kind of measurement")
    return Comparison(f"{_label(b)} (B) against {_label(a)} (A)", rows, flags(a, b), notes=[
        f"a series held in repetitions: A and B are medians; the interval is the {CONFIDENCE:.0%} bootstrap interval "
        "of the change of the median; significant: the interval excludes 0; p: Welch's t-test",
        "a figure without repetitions: only the change (n/a: one value says nothing about the noise)"])


def _row(metric: str, a: float, b: float, n: str, interval: tuple[float, float] | None, p: float,
         significant: bool | None) -> dict[str, Any]:
    unit = split_unit(metric)[1]
    return {"metric": metric, "unit": unit, "a": a, "b": b, "change": b - a,
            "change_pct": (b / a - 1) * 100 if a else None, "n": n,
            "interval": None if interval is None else f"{interval[0]:.4g} .. {interval[1]:.4g}",
            "interval_low": None if interval is None else interval[0],
            "interval_high": None if interval is None else interval[1],
            "p_value": None if not math.isfinite(p) else p,
            "significant": "n/a (no repetitions)" if significant is None else ("yes" if significant else "no")}


def swept_keys(report: Mapping[str, Any]) -> list[str]:
    """The record keys of a plan's swept fields ('workload_connections')."""
    return [unit_key(k) for k in report.get("swept") or []]


def _points(report: Mapping[str, Any], swept: list[str]) -> dict[tuple, int]:
    """Each point's identity (copy path, I/O size, swept values) -> its index."""
    pts = report["points"]
    return {(pts["copy_path"][i], pts["io_size_bytes"][i], *(pts.get(k, [None] * (i + 1))[i] for k in swept)): i
            for i in range(len(pts["copy_path"]))}


def compare_plans(a: Mapping[str, Any], b: Mapping[str, Any], label_a: str, label_b: str,
                  provenance: list[str] | None = None) -> Comparison:
    """Per point both plans hold: the throughput of each, the change, each 90 % interval; the
    change is significant when the intervals do not overlap (beyond what the model's spreads allow)."""
    swept = [k for k in swept_keys(a) if k in swept_keys(b)]
    pa, pb = _points(a, swept), _points(b, swept)
    ia = (a.get("intervals") or {}).get("points")
    ib = (b.get("intervals") or {}).get("points")
    rows = []
    for key, i in pa.items():
        if key not in pb:
            continue
        j = pb[key]
        xa, xb = a["points"]["throughput_bytes_per_s"][i], b["points"]["throughput_bytes_per_s"][j]
        row = {"copy_path": key[0], "io_size": format_size(key[1]), **dict(zip(swept, key[2:])),
               "a_gbytes_per_s": to_gbytes_per_s(xa), "b_gbytes_per_s": to_gbytes_per_s(xb),
               "change_pct": (xb / xa - 1) * 100 if xa else None,
               "binding": a["points"]["binding"][i] if a["points"]["binding"][i] == b["points"]["binding"][j]
               else f"{a['points']['binding'][i]} -> {b['points']['binding'][j]}"}
        spans = [(ia["throughput_p05_bytes_per_s"][i], ia["throughput_p95_bytes_per_s"][i]) if ia else None,
                 (ib["throughput_p05_bytes_per_s"][j], ib["throughput_p95_bytes_per_s"][j]) if ib else None]
        row["a_interval"], row["b_interval"] = (None if s is None or s[0] is None else
                                                f"{to_gbytes_per_s(s[0]):.2f}-{to_gbytes_per_s(s[1]):.2f}"
                                                for s in spans)
        if spans[0] and spans[1] and None not in (*spans[0], *spans[1]):
            apart = spans[0][1] < spans[1][0] or spans[1][1] < spans[0][0]
            row["significant"] = "yes" if apart else "no"
        else:
            row["significant"] = "n/a (no intervals)" if xa != xb else "no"
        rows.append(row)
    if not rows:
        raise InputError(f"{label_a} and {label_b} share no point (copy path, I/O size and swept values)",
                         "compare plans of the same copy paths and I/O sizes")
    return Comparison(f"{label_b} (B) against {label_a} (A)", rows, list(provenance or []), kind="modelled", notes=[
        "A and B: the model's point figures; 90%: the interval over the draws of each platform's spreads; "
        "significant: the two intervals do not overlap (a change beyond what the spreads allow)"])


def setting_flags(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """What differs between the settings of two plan reports (scenario, platform, links, counts)."""
    sa, sb = a.get("setting") or {}, b.get("setting") or {}
    return [f"different {k.replace('_', ' ')}: {sa.get(k)} (A) vs {sb.get(k)} (B)"
            for k in sorted(sa) if k not in ("copy_paths", "scenario_description", "platform_description")
            and sa.get(k) != sb.get(k)]
