"""The plan report: everything a capacity-planning report is made of, computed once from an
evaluation's arrays.

    columns(ev)               every per-point figure, one list per key (SI units in the keys)
    rows(ev)                  the same as one dict per point, in evaluation order
    notes(ev)                 what the numbers mean, unreachable DMA APIs, assumed figures
    target_columns(ev, ...)   'what it takes' per point (models.target.requirements)
    path_summary(ev, cols)    per copy path: the highest throughput and what binds there
    plan_report(ev, target)   all of it as one JSON-able dict, points in table order
    table_rows(points)        the rows a table shows: the figures above plus the display ones
                              (`io_size` "64KiB", `gbytes_per_s`, `util_<resource>_pct`, `headroom_pct`)

The CLI picks columns from `table_rows` and formats them. The stored `plan` record holds the dict
`plan_report` returns (SI figures only), and `table_rows` turns a live or a stored report into the
same rows, so a table can be rendered again from the store alone.
"""

from __future__ import annotations

import math
from typing import Any

from models.bottleneck import CHECKSUM, RESOURCE_END, RESOURCES
from models.sweep import Evaluation
from models.target import Requirements, requirements
from scenarios.errors import InputError
from scenarios.limits import TARGET_RATE
from scenarios.schema import MAX_SWEEP_POINTS, unit_key
from scenarios.units import GB, MB, format_size, parse_rate, to_gbits_per_s, to_gbytes_per_s

def swept(ev: Evaluation) -> list[str]:
    """Flat names of the fields the scenario sweeps besides the copy path and the I/O size."""
    return [k for k in ev.axes if k not in ("path_index", "workload.io_size")]


def _key(resource: str) -> str:
    return resource.replace("-", "_")


def _pct(ratio: float | None) -> float | None:
    """A ratio as a percentage for a table; None where the resource is not used (0, inf, or stored as null)."""
    return ratio * 100 if ratio is not None and math.isfinite(ratio) and ratio > 0 else None


def columns(ev: Evaluation) -> dict[str, list]:
    """Every per-point figure of the evaluation, one list per key, in evaluation order.

    SI units in the keys (`throughput_bytes_per_s`, `util_<resource>_ratio`, `headroom_ratio`,
    `capacity_<resource>_bytes_per_s`, `cpu_s_per_gb`, `latency_seconds`). Where nothing flows
    (no DMA engine answers the path's API) `binding` says so and `next_binding` is '-'."""
    r = ev.result
    X = r.throughput.ravel().tolist()
    binding = [RESOURCES[b] for b in r.binding.ravel().tolist()]
    following = [RESOURCES[b] for b in r.next_binding.ravel().tolist()]
    cols: dict[str, list] = {
        "io_size_bytes": r.io_size.ravel().tolist(),
        "copy_path": [ev.table.names[j] for j in r.path_index.ravel().tolist()],
        **{unit_key(k): ev.axes[k].astype(float).ravel().tolist() for k in swept(ev)},
        "throughput_bytes_per_s": X,
        "binding": [b if x > 0 else f"{b} (none reachable)" for b, x in zip(binding, X)],
        "next_binding": [b if x > 0 else "-" for b, x in zip(following, X)],
        "headroom_ratio": r.headroom.ravel().tolist(),
        "cores_busy": r.cores_busy.ravel().tolist(),
        "dma_engines_busy": r.dma_engines_busy.ravel().tolist(),
        "cpu_s_per_gb": (r.cpu_seconds_per_byte * GB).ravel().tolist(),
        "latency_seconds": r.latency_seconds.ravel().tolist(),
        "binding_end": [("host" if b == "cpu-flows" and h > 0 else RESOURCE_END[b]) if x > 0 else "-"
                        for b, x, h in zip(binding, X, r.host_softirq_seconds_per_io.ravel())],
        "client_cpu_s_per_gb": (r.client_cpu_seconds_per_byte * GB).ravel().tolist(),
        "host_softirq_cpu_s_per_gb": (r.host_softirq_seconds_per_io / r.io_size * GB).ravel().tolist(),
        "cpu_copy_s_per_gb": (r.copy_seconds_per_io / r.io_size * GB).ravel().tolist(),
        "cpu_mm_s_per_gb": (r.mm_seconds_per_io / r.io_size * GB).ravel().tolist(),
        "checksum": [CHECKSUM[c] for c in r.checksum.ravel().tolist()],
    }
    util = r.utilisation
    for j, name in enumerate(RESOURCES):
        cols[f"util_{_key(name)}_ratio"] = util[j].ravel().tolist()
        cols[f"capacity_{_key(name)}_bytes_per_s"] = r.capacity[j].ravel().tolist()
    return cols


def _as_rows(cols: dict[str, list]) -> list[dict]:
    keys = list(cols)
    return [dict(zip(keys, values)) for values in zip(*cols.values())]


def _take(cols: dict[str, list], idx: list[int]) -> dict[str, list]:
    return {k: [v[i] for i in idx] for k, v in cols.items()}


def rows(ev: Evaluation) -> list[dict]:
    """One dict per point, in evaluation order: the keys of `columns`."""
    return _as_rows(columns(ev))


def table_rows(points: dict[str, list]) -> list[dict]:
    """The rows a table shows, from a report's `points` (live or read back from a record): every
    figure, plus `io_size` ("64KiB"), `gbytes_per_s`, `util_<resource>_pct` and `headroom_pct`
    (None where a resource is not used or nothing flows). A report stored before a resource or a
    figure existed renders with that column empty."""
    out = _as_rows(points)
    for row in out:
        row["io_size"] = format_size(row["io_size_bytes"])
        if "throughput_bytes_per_s" in row:
            X = row["throughput_bytes_per_s"]
            row["gbytes_per_s"] = to_gbytes_per_s(X)
            row["headroom_pct"] = _pct(row["headroom_ratio"]) if X > 0 else None
            for name in RESOURCES:
                row[f"util_{_key(name)}_pct"] = _pct(row.get(f"util_{_key(name)}_ratio"))
    return out


def order(ev: Evaluation) -> list[int]:
    """Table order: by I/O size, then the swept values, then the scenario's path order."""
    r = ev.result
    keys = list(zip(r.io_size.ravel().tolist(), *[ev.axes[k].ravel().tolist() for k in swept(ev)],
                    r.path_index.ravel().tolist()))
    return sorted(range(ev.points), key=keys.__getitem__)


def title(ev: Evaluation) -> str:
    s = ev.scenario
    if s.workload.transport == "memory":
        return f"{s.name} on {s.platform.name}: memory-to-memory copies, no network"
    what = f"SMB2 {s.workload.operation.upper()}" if s.workload.application == "smb2" else \
        f"raw data ({'server sends' if s.workload.operation == 'read' else 'server receives'}, no SMB2)"
    return f"{s.name} on {s.platform.name}: {s.link.label} {s.link.protocol}, {what} over {s.workload.transport}"


def notes(ev: Evaluation) -> list[str]:
    """What the figures mean, which copy paths reach no DMA engine, which platform figures are assumed."""
    s = ev.scenario
    data = f"SMB2 {s.workload.operation.upper()} data" if s.workload.application == "smb2" else "data"
    out = [
        f"throughput = payload bytes/s of {data}; utilisation = throughput / capacity of that resource",
        f"serving cores = min(io_cores {s.workload.io_cores}, connections); links used = min(links, connections)",
        "headroom = how much faster the point would run if the binding resource were removed",
    ]
    if s.workload.clients > 1 or "workload.clients" in ev.axes:
        where = ("the clients run on this host too, their threads sharing its cores" if s.link.medium == "loopback"
                 else "each client host has its own client cores, its own link is not modelled (assumed no "
                 "slower than its share)")
        out.append(f"incast: clients with {s.workload.connections} connection(s) each share the server (its connections "
                   f"= clients x connections); {where}")
    if s.link.medium == "loopback":
        out.append("loopback: both ends on this host (no wire, no PCIe); the receive work a send triggers runs on "
                   "the sending core, and every core of the host counts both ends' work")
    if s.workload.client_cores > 0:
        out.append(f"the client is modelled: min(client_cores {s.workload.client_cores}, connections) threads "
                   "(client-cpu) and its connections' receive work (client-flows)")
    if s.platform.nic.rdma == "software" and s.link.protocol != "tcp":
        out.append(f"{s.platform.name}'s RDMA runs in software (soft-RoCE): per packet, per byte (copy + ICRC) and "
                   "per work request on the host's cores, at both ends")
    for p in s.copy_paths:
        if p.dma_api and not any(p.dma_api in e.apis and e.count > 0 for e in s.platform.dma):
            out.append(f"{p.name}: no DMA engine on {s.platform.name} answers {p.dma_api} (see the platform's dma apis)")
    assumed = sorted(k for k, v in s.platform.sources().items() if "assumption" in v.lower())
    if assumed:
        out.append(f"{len(assumed)} platform figures are assumptions, not measurements: {', '.join(assumed)}")
    return out


def error_pct(predicted: float, measured: float) -> float:
    """The model's error against a measurement, in percent of the measurement (+: the model is high)."""
    return (predicted / measured - 1.0) * 100.0 if measured and math.isfinite(measured) else float("nan")


def error_summary(errors: list[float]) -> str:
    """'median |error| 12%, max 40% (n points)' over the finite errors."""
    finite = sorted(abs(e) for e in errors if math.isfinite(e))
    if not finite:
        return "no point to compare"
    n = len(finite)
    median = finite[n // 2] if n % 2 else (finite[n // 2 - 1] + finite[n // 2]) / 2
    return f"median |error| {median:.0f}%, max {finite[-1]:.0f}% ({n} points)"


def check_target(rate: float, where: str, text: str | None = None) -> float:
    """A target rate the model can answer: the same physical range a scenario file's `target` has
    (scenarios.limits.TARGET_RATE)."""
    problem = TARGET_RATE.problem(rate)        # also refuses nan and inf
    if problem:
        shown = text if text is not None else f"{to_gbytes_per_s(rate):g}GB/s"
        raise InputError(f"{where}: {shown} is {problem}",
                         f"give a rate between {TARGET_RATE.text.replace('..', ' and ')}, like 46GB/s")
    return rate


def parse_target(text: str, where: str = "--target") -> float:
    return check_target(parse_rate(text, where), where, text)


def target_title(ev: Evaluation, target: float) -> str:
    s = ev.scenario
    rate = f"{to_gbytes_per_s(target):.1f} GB/s" if target >= 0.1 * GB else f"{target / MB:.1f} MB/s"
    return f"what it takes to reach {rate}: {s.name} on {s.platform.name}"


def target_notes(ev: Evaluation) -> list[str]:
    s = ev.scenario
    return ["serving cores need as many connections (one serving thread per connection)",
            f"links of {to_gbits_per_s(s.link.rate):g} Gbit/s each; NICs follow at {s.platform.nic.ports} ports per NIC"]


def target_columns(ev: Evaluation, req: Requirements, cols: dict[str, list]) -> dict[str, list]:
    """'What it takes' per point, in evaluation order; a point's identity comes from `cols`."""
    ids = ["io_size_bytes", "copy_path", *(unit_key(k) for k in swept(ev))]
    return {**{k: cols[k] for k in ids},
            "serving_cores": req.serving_cores.ravel().tolist(), "worker_cores": req.worker_cores.ravel().tolist(),
            "flow_cores": req.flow_cores.ravel().tolist(),
            "dma_engines": [v if math.isfinite(v) else None for v in req.dma_engines.ravel().tolist()],
            "links": req.links.ravel().tolist(), "nics": req.nics.ravel().tolist(),
            "outstanding": req.outstanding_ios.ravel().tolist(),
            "reachable": ["yes" if f else "no" for f in req.feasible.tolist()], "why_not": list(req.blocker)}


def path_summary(ev: Evaluation, cols: dict[str, list]) -> dict[str, Any]:
    """Per copy path: the highest throughput over its points and the binding resource there
    (the first such point, in evaluation order)."""
    best: dict[str, tuple[float, str]] = {}
    for path, X, binding in zip(cols["copy_path"], cols["throughput_bytes_per_s"], cols["binding"]):
        if path not in best or X > best[path][0]:
            best[path] = (X, binding)
    out: dict[str, Any] = {}
    for p in ev.scenario.copy_paths:
        if p.name in best:
            out[f"{p.name}_max_throughput_gbytes_per_s"] = to_gbytes_per_s(best[p.name][0])
            out[f"{p.name}_binding_at_max"] = best[p.name][1]
    return out


NEEDS_RATES = 20                # target rates the needs curve is evaluated at
NEEDS_MAX_POINTS = 2_000        # above this many points the curve is left out (a Python loop per point and rate)


def needs(ev: Evaluation, idx: list[int], cols: dict[str, list]) -> dict[str, Any] | None:
    """Cores (serving + workers) and DMA engines needed at NEEDS_RATES target rates up to the most
    the links carry, per point in `idx` order (models.target.requirements at each rate): what the
    'needed vs target' figure draws. None for an evaluation of more than NEEDS_MAX_POINTS points."""
    links = [c for c in cols["capacity_links_bytes_per_s"] if math.isfinite(c) and c > 0]
    if ev.points > NEEDS_MAX_POINTS or not links:
        return None
    top = max(links)
    rates = [top * (k + 1) / NEEDS_RATES for k in range(NEEDS_RATES)]
    per_rate = [requirements(ev, rate) for rate in rates]
    cores = [(r.serving_cores + r.worker_cores).ravel() for r in per_rate]
    dma = [r.dma_engines.ravel() for r in per_rate]
    return {"rates_bytes_per_s": rates,
            "cores": [[float(c[i]) for c in cores] for i in idx],
            "dma_engines": [[float(d[i]) if math.isfinite(d[i]) else None for d in dma] for i in idx],
            "reachable": [[bool(r.feasible[i]) for r in per_rate] for i in idx]}


def setting(ev: Evaluation) -> dict[str, Any]:
    """What a report says about the scenario and the platform besides the figures' sources: the
    names, descriptions, the workload's counts (SI units in the keys)."""
    s = ev.scenario
    w = s.workload
    return {"scenario": s.name, "scenario_description": s.description, "platform": s.platform.name,
            "platform_description": s.platform.description, "links": s.link.label, "protocol": s.link.protocol,
            "mtu_bytes": s.link.mtu, "transport": w.transport, "operation": w.operation,
            "connections": w.connections, "clients": w.clients, "io_cores": w.io_cores, "async_workers": w.async_workers,
            "outstanding_per_connection": w.outstanding_per_connection, "cores": s.platform.cpu.cores,
            "copy_paths": {p.name: p.description for p in s.copy_paths}}


def plan_report(ev: Evaluation, target: float | None = None, samples: int = 0, seed: int | None = None) -> dict[str, Any]:
    """The whole report as one JSON-able dict of SI figures (what the `plan` record stores):

        {title, notes, swept: [flat names], points: {key: [value per point]} (table order),
         summary: {<path>_max_throughput_gbytes_per_s, <path>_binding_at_max},
         target: null | {rate_bytes_per_s, title, notes, points: {...} (table order)},
         needs: null | {rates_bytes_per_s, cores, dma_engines, reachable} (see `needs`),
         setting: the scenario and platform in a few figures (see `setting`),
         intervals: null | models.uncertainty.intervals (`samples` draws of the platform's spreads)}
    """
    from models import uncertainty

    cols = columns(ev)
    idx = order(ev)
    report: dict[str, Any] = {"title": title(ev), "notes": notes(ev), "swept": swept(ev),
                              "points": _take(cols, idx), "summary": path_summary(ev, cols), "target": None}
    if target is not None:
        report["target"] = {"rate_bytes_per_s": target, "title": target_title(ev, target),
                            "notes": target_notes(ev),
                            "points": _take(target_columns(ev, requirements(ev, target), cols), idx)}
    report["needs"] = needs(ev, idx, cols)
    report["setting"] = setting(ev)
    report["intervals"] = (uncertainty.intervals(ev, idx, samples, uncertainty.SEED if seed is None else seed, target)
                           if samples > 0 else None)
    if samples > 0 and report["intervals"] is None:
        report["notes"].append(f"no intervals: {ev.points:,} points x {uncertainty.MIN_SAMPLES} draws would pass the "
                               f"{MAX_SWEEP_POINTS:,} points one evaluation holds")
    return report
