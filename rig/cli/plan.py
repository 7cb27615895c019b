"""`rdmarig plan SCENARIO`: the capacity-planning table of a scenario, from the model.

Prints one row per (I/O size, copy path, swept field): payload throughput, the binding resource,
the utilisation of every resource, cores and DMA engines busy, and the headroom to the next
bottleneck. `--target 46GB/s` adds what it takes to reach that rate. Every run stores one
`modelled` record naming the scenario file hash and the platform's sources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from models.bottleneck import RESOURCES
from models.sweep import Evaluation, evaluate_scenario
from models.target import Requirements, requirements
from results.record import Record, scenario_ref
from results.tables import EXTENSIONS, Column, Table, render
from rig.cli._common import StoreOption, open_store
from scenarios.errors import InputError
from scenarios.schema import MAX_TABLE_ROWS, Scenario, check_grid_points, load_scenario, unit_key, unit_label
from scenarios.units import GB, format_size, parse_rate

_UTIL_COLUMNS = [("links", "links [%]"), ("pcie", "PCIe [%]"), ("dram", "DRAM [%]"),
                 ("cpu-serving", "serving cores [%]"), ("cpu-workers", "worker cores [%]"),
                 ("cpu-all", "all cores [%]"), ("dma", "DMA [%]"), ("pipeline", "pipeline [%]")]
_COUNTS = {"connections", "io_cores", "async_workers", "cores", "count", "outstanding_per_connection", "lanes",
           "ports"}
VIEWS = ("compact", "wide", "machine")


def _swept(ev: Evaluation) -> list[str]:
    return [k for k in ev.axes if k not in ("path_index", "workload.io_size")]


def _swept_column(flat_name: str) -> Column:
    unit = unit_label(flat_name)
    name = flat_name.split(".")[-1]
    header = f"{name} [{unit}]" if unit else f"{name} [count]" if name in _COUNTS else name
    return Column(unit_key(flat_name), header, "{:g}")


def _util_key(resource: str) -> str:
    return f"util_{resource.replace('-', '_')}_pct"


def _order(ev: Evaluation, swept: list[str]) -> list[int]:
    """Rows by I/O size, then swept values, then the scenario's path order."""
    r = ev.result
    return sorted(range(ev.points), key=lambda i: (r.io_size.flat[i], *[ev.axes[k].flat[i] for k in swept],
                                                   int(r.path_index.flat[i])))


def capacity_table(ev: Evaluation, view: str = "compact") -> Table:
    """The capacity table. `compact`: throughput, binding, cores, DMA, headroom (the terminal
    default); `wide`: plus every resource's utilisation; `machine` (CSV, JSON): every column,
    numbers with their unit in the key and the I/O size in bytes."""
    s = ev.scenario
    r = ev.result
    util = r.utilisation
    swept = _swept(ev)
    columns = ([Column("io_size_bytes", "I/O size [B]", "{:.0f}")] if view == "machine"
               else [Column("io_size", "I/O size")])
    columns += [Column("copy_path", "copy path")] + [_swept_column(k) for k in swept]
    columns += [Column("gbytes_per_s", "throughput [GB/s]", "{:.2f}"), Column("binding", "binding")]
    if view != "compact":
        columns += [Column(_util_key(name), header, "{:.0f}") for name, header in _UTIL_COLUMNS]
    columns += [Column("cores_busy", "cores busy [cores]", "{:.2f}"),
                Column("dma_engines_busy", "DMA busy [engines]", "{:.2f}"),
                Column("headroom_pct", "headroom [%]", "{:.0f}"), Column("next_binding", "next bottleneck")]
    rows = []
    for i in range(ev.points):
        X = float(r.throughput.flat[i])
        row = {"io_size": format_size(float(r.io_size.flat[i])), "io_size_bytes": float(r.io_size.flat[i]),
               "copy_path": ev.path_name(i), "gbytes_per_s": X / GB, "binding": RESOURCES[int(r.binding.flat[i])],
               "cores_busy": float(r.cores_busy.flat[i]), "dma_engines_busy": float(r.dma_engines_busy.flat[i]),
               "next_binding": RESOURCES[int(r.next_binding.flat[i])]}
        row.update({unit_key(k): float(ev.axes[k].flat[i]) for k in swept})
        for name, _ in _UTIL_COLUMNS:
            u = float(util[RESOURCES.index(name)].flat[i])
            row[_util_key(name)] = u * 100 if np.isfinite(u) and u > 0 else None
        h = float(r.headroom.flat[i])
        row["headroom_pct"] = h * 100 if np.isfinite(h) else None
        if X <= 0:
            row["binding"] = "dma (none reachable)"
            row["headroom_pct"] = None
            row["next_binding"] = "-"
        rows.append(row)
    notes = _notes(ev)
    if view == "compact":
        notes.append("--wide adds the utilisation of every resource")
    return Table(title=f"{s.name} on {s.platform.name}: {s.link.label} {s.link.protocol}, "
                       f"SMB2 {s.workload.operation.upper()} over {s.workload.transport}",
                 columns=columns, rows=[rows[i] for i in _order(ev, swept)], notes=notes)


def _notes(ev: Evaluation) -> list[str]:
    s = ev.scenario
    srcs = s.platform.sources()
    assumed = sorted(k for k, v in srcs.items() if "assumption" in v.lower())
    notes = [
        f"throughput = payload bytes/s of SMB2 {s.workload.operation.upper()} data; "
        "utilisation = throughput / capacity of that resource",
        f"serving cores = min(io_cores {s.workload.io_cores}, connections); links used = min(links, connections)",
        "headroom = how much faster the point would run if the binding resource were removed",
    ]
    unreachable = [p.name for p in s.copy_paths if p.dma_api and not any(p.dma_api in e.apis and e.count > 0
                                                                         for e in s.platform.dma)]
    for name in unreachable:
        api = next(p.dma_api for p in s.copy_paths if p.name == name)
        notes.append(f"{name}: no DMA engine on {s.platform.name} answers {api} (see the platform's dma apis)")
    if assumed:
        notes.append(f"{len(assumed)} platform figures are assumptions, not measurements: {', '.join(assumed)}")
    return notes


def target_table(ev: Evaluation, req: Requirements, view: str = "compact") -> Table:
    r = ev.result
    swept = _swept(ev)
    columns = ([Column("io_size_bytes", "I/O size [B]", "{:.0f}")] if view == "machine"
               else [Column("io_size", "I/O size")])
    columns += [Column("copy_path", "copy path")]
    columns += [_swept_column(k) for k in swept]
    columns += [Column("serving_cores", "serving cores [cores]", "{:.0f}"),
                Column("worker_cores", "worker cores [cores]", "{:.0f}"),
                Column("dma_engines", "DMA engines [engines]", "{:.0f}"),
                Column("links", "links [links]", "{:.0f}"), Column("nics", "NICs [NICs]", "{:.0f}"),
                Column("outstanding", "I/Os in flight [I/Os]", "{:.0f}"),
                Column("reachable", "reachable"), Column("why_not", "why not")]
    rows = []
    for i in range(ev.points):
        row = {"io_size": format_size(float(r.io_size.flat[i])), "io_size_bytes": float(r.io_size.flat[i]),
               "copy_path": ev.path_name(i),
               "serving_cores": float(req.serving_cores.flat[i]), "worker_cores": float(req.worker_cores.flat[i]),
               "dma_engines": float(req.dma_engines.flat[i]) if np.isfinite(req.dma_engines.flat[i]) else None,
               "links": float(req.links.flat[i]), "nics": float(req.nics.flat[i]),
               "outstanding": float(req.outstanding_ios.flat[i]), "reachable": "yes" if req.feasible[i] else "no",
               "why_not": req.blocker[i]}
        row.update({unit_key(k): float(ev.axes[k].flat[i]) for k in swept})
        rows.append(row)
    s = ev.scenario
    return Table(title=f"what it takes to reach {req.target / GB:.1f} GB/s: {s.name} on {s.platform.name}",
                 columns=columns, rows=[rows[i] for i in _order(ev, swept)],
                 notes=["serving cores need as many connections (one serving thread per connection)",
                        f"links of {s.link.rate * 8 / 1e9:g} Gbit/s each; NICs follow at {s.platform.nic.ports} ports per NIC"])


def modelled_record(ev: Evaluation, target: Optional[float]) -> Record:
    s = ev.scenario
    r = ev.result
    samples: dict[str, list[float]] = {"io_size_bytes": [float(v) for v in r.io_size.ravel()],
                                       "throughput_gbytes_per_s": [float(v) / GB for v in r.throughput.ravel()],
                                       "cores_busy": [float(v) for v in r.cores_busy.ravel()],
                                       "dma_engines_busy": [float(v) for v in r.dma_engines_busy.ravel()]}
    summary: dict[str, object] = {}
    for j, p in enumerate(s.copy_paths):
        mask = r.path_index.ravel() == j
        best = int(np.argmax(np.where(mask, r.throughput.ravel(), -1)))
        summary[f"{p.name}_max_throughput_gbytes_per_s"] = float(r.throughput.ravel()[best]) / GB
        summary[f"{p.name}_binding_at_max"] = RESOURCES[int(r.binding.ravel()[best])]
    return Record(
        kind="modelled", name=f"plan:{s.name}",
        scenario=scenario_ref(s.name, s.path),
        params={"scenario": s.name, "platform": s.platform.name, "platform_path": s.platform.path,
                "platform_sources": s.platform.sources(), "links": s.link.label, "protocol": s.link.protocol,
                "copy_paths": [p.name for p in s.copy_paths],
                "point_paths": [ev.path_name(i) for i in range(ev.points)],
                "swept": {unit_key(k): [float(v) for v in ev.axes[k]] for k in _swept(ev)},
                "target_bytes_per_s": target},
        samples=samples, summary=summary)


def _view(fmt: str, wide: bool) -> str:
    return "machine" if fmt in ("csv", "json") else "wide" if wide else "compact"


def plan(
    scenario: str = typer.Argument(..., help="Built-in scenario name (rdmarig scenarios list) or a .toml path."),
    platform: Optional[str] = typer.Option(None, "--platform", help="Platform name or .toml file; overrides the scenario's."),
    fmt: str = typer.Option("md", "--format", help="md, csv, json or html (json with --target: a list of both tables). "
                            "csv and json always carry every column, with units in the keys."),
    wide: bool = typer.Option(False, "--wide", help="md/html: add the utilisation of every resource."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory to write the table(s) into, in every format."),
    target: Optional[str] = typer.Option(None, "--target", help="Rate to reach, e.g. 46GB/s: what it takes."),
    store: Optional[Path] = StoreOption,
) -> None:
    """Capacity table of a scenario: throughput, binding resource, cores and DMA engines busy, headroom."""
    if fmt not in EXTENSIONS:
        raise InputError(f"--format: unknown table format {fmt!r}", "use md, csv, json or html")
    target_rate = parse_rate(target, "--target") if target is not None else None
    if target_rate is not None and target_rate <= 0:
        raise InputError("--target: must be a positive rate", "write it like 46GB/s")
    s: Scenario = load_scenario(scenario, platform=platform)
    check_grid_points(s.sweep.points(len(s.copy_paths)), s.path, MAX_TABLE_ROWS)
    if target_rate is None:
        target_rate = s.target
    ev = evaluate_scenario(s)
    req = requirements(ev, target_rate) if target_rate is not None else None

    def tables(f: str) -> list[Table]:
        view = _view(f, wide)
        return [capacity_table(ev, view)] + ([target_table(ev, req, view)] if req is not None else [])

    text = _render_all(tables(fmt), fmt)
    typer.echo(text, nl=not text.endswith("\n"))
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--out {out}: cannot create the directory ({exc.strerror})",
                             "pass a writable directory") from None
        for f in sorted(set(EXTENSIONS.values())):
            for t, stem in zip(tables(f), ("", "-target")):
                (out / f"plan-{s.name}{stem}.{f}").write_text(render(t, f))
    rec = modelled_record(ev, target_rate)
    with open_store(store) as st:
        st.insert(rec)
    typer.echo(f"stored modelled record {rec.id} in {st.path}", err=True)


def _render_all(tables: list[Table], fmt: str) -> str:
    if fmt == "json" and len(tables) > 1:
        # one valid JSON document: [capacity table, target table]
        return "[\n" + ",\n".join(render(t, fmt) for t in tables) + "\n]\n"
    return "\n".join(render(t, fmt) for t in tables)
