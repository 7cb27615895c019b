"""The plan report: everything a capacity-planning report is made of, computed once from an
evaluation's arrays.

    rows(ev)                  one dict per point (evaluation order), units in the keys
    notes(ev)                 what the numbers mean, unreachable DMA APIs, assumed figures
    target_rows(ev, req, ...) 'what it takes' per point (models.target.requirements)
    path_summary(rows)        per copy path: the highest throughput and what binds there
    plan_report(ev, target)   all of it as one JSON-able dict, rows in table order

The CLI picks columns from these rows and formats them; the stored `plan` record holds the dict
`plan_report` returns, so a table can be rendered again from the store alone. Nothing here
formats for a terminal except the labels a reader needs in a row (`io_size` "64KiB").
"""

from __future__ import annotations

import math
from typing import Any

from models.bottleneck import RESOURCES
from models.sweep import Evaluation
from models.target import Requirements, requirements
from scenarios.errors import InputError
from scenarios.schema import unit_key
from scenarios.units import GB, TB, format_size, parse_rate, to_gbits_per_s, to_gbytes_per_s

# a target rate outside this range is an input error: above it no server's links, PCIe or DRAM
# come within a factor of ten (8 x 800 Gbit/s is 0.8 TB/s); below it the counts are all 0 or 1
TARGET_MIN_BYTES_PER_S = 1e6
TARGET_MAX_BYTES_PER_S = 10 * TB
TARGET_RANGE = "1MB/s..10TB/s"

# the keys that name a point: I/O size, copy path, then the swept fields (table order follows them)
_ID_KEYS = ("io_size", "io_size_bytes", "copy_path")


def swept(ev: Evaluation) -> list[str]:
    """Flat names of the fields the scenario sweeps besides the copy path and the I/O size."""
    return [k for k in ev.axes if k not in ("path_index", "workload.io_size")]


def _key(resource: str) -> str:
    return resource.replace("-", "_")


def _pct(ratio: float) -> float | None:
    """A ratio as a percentage for a table; None where the resource is not used (0 or inf)."""
    return ratio * 100 if math.isfinite(ratio) and ratio > 0 else None


def rows(ev: Evaluation) -> list[dict]:
    """One dict per point, in evaluation order, units in the key names.

    Model figures in SI (`throughput_bytes_per_s`, `util_<resource>_ratio`, `headroom_ratio`,
    `capacity_<resource>_bytes_per_s`) and the same figures as a report shows them
    (`gbytes_per_s`, `util_<resource>_pct`, `headroom_pct`: None where not meaningful).
    Where nothing flows (no DMA engine answers the path's API) `binding` says so."""
    r = ev.result
    util = r.utilisation
    axes = swept(ev)
    out = []
    for i in range(ev.points):
        X = float(r.throughput.flat[i])
        S = float(r.io_size.flat[i])
        binding = RESOURCES[int(r.binding.flat[i])]
        headroom = float(r.headroom.flat[i])
        row: dict[str, Any] = {
            "io_size": format_size(S),
            "io_size_bytes": S,
            "copy_path": ev.path_name(i),
            **{unit_key(k): float(ev.axes[k].flat[i]) for k in axes},
            "throughput_bytes_per_s": X,
            "gbytes_per_s": to_gbytes_per_s(X),
            "binding": binding if X > 0 else f"{binding} (none reachable)",
            "next_binding": RESOURCES[int(r.next_binding.flat[i])] if X > 0 else "-",
            "headroom_ratio": headroom,
            "headroom_pct": _pct(headroom) if X > 0 else None,
            "cores_busy": float(r.cores_busy.flat[i]),
            "dma_engines_busy": float(r.dma_engines_busy.flat[i]),
            "cpu_s_per_gb": float(r.cpu_seconds_per_byte.flat[i] * GB),
            "latency_seconds": float(r.latency_seconds.flat[i]),
        }
        for j, name in enumerate(RESOURCES):
            u = float(util[j].flat[i])
            row[f"util_{_key(name)}_ratio"] = u
            row[f"util_{_key(name)}_pct"] = _pct(u)
            row[f"capacity_{_key(name)}_bytes_per_s"] = float(r.capacity[j].flat[i])
        out.append(row)
    return out


def order(ev: Evaluation) -> list[int]:
    """Table order: by I/O size, then the swept values, then the scenario's path order."""
    r = ev.result
    axes = swept(ev)
    return sorted(range(ev.points), key=lambda i: (r.io_size.flat[i], *[ev.axes[k].flat[i] for k in axes],
                                                   int(r.path_index.flat[i])))


def title(ev: Evaluation) -> str:
    s = ev.scenario
    return (f"{s.name} on {s.platform.name}: {s.link.label} {s.link.protocol}, "
            f"SMB2 {s.workload.operation.upper()} over {s.workload.transport}")


def notes(ev: Evaluation) -> list[str]:
    """What the figures mean, which copy paths reach no DMA engine, which platform figures are assumed."""
    s = ev.scenario
    out = [
        f"throughput = payload bytes/s of SMB2 {s.workload.operation.upper()} data; "
        "utilisation = throughput / capacity of that resource",
        f"serving cores = min(io_cores {s.workload.io_cores}, connections); links used = min(links, connections)",
        "headroom = how much faster the point would run if the binding resource were removed",
    ]
    for p in s.copy_paths:
        if p.dma_api and not any(p.dma_api in e.apis and e.count > 0 for e in s.platform.dma):
            out.append(f"{p.name}: no DMA engine on {s.platform.name} answers {p.dma_api} (see the platform's dma apis)")
    assumed = sorted(k for k, v in s.platform.sources().items() if "assumption" in v.lower())
    if assumed:
        out.append(f"{len(assumed)} platform figures are assumptions, not measurements: {', '.join(assumed)}")
    return out


def check_target(rate: float, where: str, text: str | None = None) -> float:
    """A target rate the model can answer: finite, positive and within TARGET_RANGE."""
    if not (TARGET_MIN_BYTES_PER_S <= rate <= TARGET_MAX_BYTES_PER_S):       # also refuses nan and inf
        shown = text if text is not None else f"{to_gbytes_per_s(rate):g}GB/s"
        raise InputError(f"{where}: {shown} is outside {TARGET_RANGE}",
                         f"give a rate between {TARGET_RANGE.replace('..', ' and ')}, like 46GB/s")
    return rate


def parse_target(text: str, where: str = "--target") -> float:
    return check_target(parse_rate(text, where), where, text)


def target_title(ev: Evaluation, target: float) -> str:
    s = ev.scenario
    g = to_gbytes_per_s(target)
    return f"what it takes to reach {g:.1f} GB/s: {s.name} on {s.platform.name}" if g >= 0.1 else \
        f"what it takes to reach {g * 1e3:.1f} MB/s: {s.name} on {s.platform.name}"


def target_notes(ev: Evaluation) -> list[str]:
    s = ev.scenario
    return ["serving cores need as many connections (one serving thread per connection)",
            f"links of {to_gbits_per_s(s.link.rate):g} Gbit/s each; NICs follow at {s.platform.nic.ports} ports per NIC"]


def target_rows(ev: Evaluation, req: Requirements, point_rows: list[dict]) -> list[dict]:
    """'What it takes' per point, in evaluation order; a point's identity comes from `point_rows`."""
    ids = [*_ID_KEYS, *(unit_key(k) for k in swept(ev))]
    out = []
    for i, base in enumerate(point_rows):
        dma = float(req.dma_engines.flat[i])
        out.append({**{k: base[k] for k in ids},
                    "serving_cores": float(req.serving_cores.flat[i]), "worker_cores": float(req.worker_cores.flat[i]),
                    "dma_engines": dma if math.isfinite(dma) else None,
                    "links": float(req.links.flat[i]), "nics": float(req.nics.flat[i]),
                    "outstanding": float(req.outstanding_ios.flat[i]),
                    "reachable": "yes" if req.feasible[i] else "no", "why_not": req.blocker[i]})
    return out


def path_summary(ev: Evaluation, point_rows: list[dict]) -> dict[str, Any]:
    """Per copy path: the highest throughput over its points and the binding resource there
    (the first such point, in evaluation order)."""
    out: dict[str, Any] = {}
    for p in ev.scenario.copy_paths:
        best = None
        for row in point_rows:
            if row["copy_path"] == p.name and (best is None or row["throughput_bytes_per_s"] > best["throughput_bytes_per_s"]):
                best = row
        if best is not None:
            out[f"{p.name}_max_throughput_gbytes_per_s"] = best["gbytes_per_s"]
            out[f"{p.name}_binding_at_max"] = best["binding"]
    return out


def plan_report(ev: Evaluation, target: float | None = None) -> dict[str, Any]:
    """The whole report as one JSON-able dict (what the `plan` record stores):

        {title, notes, swept: [flat names], rows: [...] (table order), summary: {...},
         target: null | {rate_bytes_per_s, title, notes, rows: [...] (table order)}}
    """
    point_rows = rows(ev)
    idx = order(ev)
    report: dict[str, Any] = {"title": title(ev), "notes": notes(ev), "swept": swept(ev),
                              "rows": [point_rows[i] for i in idx], "summary": path_summary(ev, point_rows),
                              "target": None}
    if target is not None:
        trows = target_rows(ev, requirements(ev, target), point_rows)
        report["target"] = {"rate_bytes_per_s": target, "title": target_title(ev, target),
                            "notes": target_notes(ev), "rows": [trows[i] for i in idx]}
    return report
