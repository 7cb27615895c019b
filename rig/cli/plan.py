"""`rdmarig plan SCENARIO`: the capacity-planning table of a scenario, from the model.

Prints one row per (I/O size, copy path, swept field): payload throughput, the binding resource,
the utilisation of every resource, cores and DMA engines busy, and the headroom to the next
bottleneck. `--target 46GB/s` adds what it takes to reach that rate. Every run stores one
`modelled` record naming the scenario's and the platform's file hashes, the platform's sources
and the whole report (models.report.plan_report), from which `tables_from_record` renders the
same tables again.

The rows, notes and titles come from models/report.py; this module only picks columns and formats.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from results.tables import EXTENSIONS, Column, Table, render
from rig.cli._common import StoreOption, open_store
from scenarios.errors import InputError
from scenarios.schema import unit_key

if TYPE_CHECKING:
    from results.record import Record
    from scenarios.schema import Scenario

_UTIL_COLUMNS = [("links", "links"), ("pcie", "PCIe"), ("dram", "DRAM"), ("cpu_serving", "serving cores"),
                 ("cpu_workers", "worker cores"), ("cpu_all", "all cores"), ("dma", "DMA"), ("pipeline", "pipeline"),
                 ("cpu_flows", "flow cores"), ("client_cpu", "client cores"), ("client_flows", "client flows"),
                 ("socket_link", "socket link")]
_COUNTS = {"connections", "io_cores", "async_workers", "cores", "count", "outstanding_per_connection", "lanes",
           "ports"}
VIEWS = ("compact", "wide", "machine")
WIDE_NOTE = "--wide adds the utilisation of every resource"

# JSON/CSV keys published before the unit catalogue carried no unit suffix; renaming them would
# change every `plan --format json/csv` output, so their headers name the unit here
_THROUGHPUT = Column("gbytes_per_s", "throughput [GB/s]", "{:.2f}")
_CORES_BUSY = Column("cores_busy", "cores busy [cores]", "{:.2f}")
_DMA_BUSY = Column("dma_engines_busy", "DMA busy [engines]", "{:.2f}")
_LINKS = Column("links", "links [links]", "{:.0f}")
_NICS = Column("nics", "NICs [NICs]", "{:.0f}")
_OUTSTANDING = Column("outstanding", "I/Os in flight [I/Os]", "{:.0f}")
# intervals over the draws of the platform's spreads (models/uncertainty.py)
_MEDIAN = Column.of("median_gbytes_per_s", "median", "{:.2f}")
_INTERVAL = Column.of("interval_gbytes_per_s", "90% interval")
_BINDS = Column("binds", "binds in samples")
SAMPLES_RANGE = (0, 100_000)     # models.uncertainty.MAX_SAMPLES


def _swept_column(flat_name: str) -> Column:
    name = flat_name.split(".")[-1]
    key = unit_key(flat_name)
    return Column(key, f"{name} [count]", "{:g}") if name in _COUNTS else Column.of(key, name, "{:g}")


def _point_columns(swept: list[str], view: str) -> list[Column]:
    """The columns that name a point: I/O size, copy path, swept fields."""
    size = Column.of("io_size_bytes", "I/O size", "{:.0f}") if view == "machine" else Column.of("io_size", "I/O size")
    return [size, Column.of("copy_path")] + [_swept_column(k) for k in swept]


def capacity_columns(swept: list[str], view: str = "compact", intervals: bool = False) -> list[Column]:
    """`compact`: throughput, binding, cores, DMA, headroom (the terminal default); `wide`: plus every
    resource's utilisation; `machine` (CSV, JSON): every column, the I/O size in bytes.
    `intervals`: the median, the 90 % interval and the share of draws each resource binds in."""
    columns = _point_columns(swept, view) + [_THROUGHPUT]
    if intervals:
        columns += ([Column.of(f"{q}_gbytes_per_s", f"throughput {q}") for q in ("p05", "median", "p95")]
                    if view == "machine" else [_MEDIAN, _INTERVAL])
    columns += [Column.of("binding")] + ([_BINDS] if intervals else [])
    if view != "compact":
        columns += [Column.of(f"util_{key}_pct", name, "{:.0f}") for key, name in _UTIL_COLUMNS]
    columns += [_CORES_BUSY, _DMA_BUSY]
    if intervals and view == "wide":
        columns += [Column.of("busy_interval_cores", "cores busy 90%"),
                    Column.of("dma_busy_interval_engines", "DMA busy 90%")]
    elif intervals and view == "machine":
        columns += [Column.of(f"{key}_{q}_{unit}", f"{name} {q}") for key, name, unit in
                    (("busy", "cores busy", "cores"), ("dma_busy", "DMA busy", "engines")) for q in ("p05", "p50", "p95")]
        columns += [Column.of(f"binding_share_{key}_ratio", f"binds {name}") for key, name in _UTIL_COLUMNS]
    columns += [Column.of("headroom_pct", "headroom", "{:.0f}"), Column.of("next_binding", "next bottleneck")]
    if view != "compact":
        columns += [Column.of("binding_end", "binding end"), Column.of("cpu_s_per_gb", "server CPU", "{:.3f}"),
                    Column.of("cpu_copy_s_per_gb", "of it copy", "{:.3f}"),
                    Column.of("cpu_mm_s_per_gb", "of it memory mgmt", "{:.3f}"),
                    Column.of("client_cpu_s_per_gb", "client CPU", "{:.3f}"),
                    Column.of("host_softirq_cpu_s_per_gb", "ksoftirqd CPU", "{:.3f}"), Column.of("checksum")]
    return columns


def target_columns(swept: list[str], view: str = "compact", intervals: bool = False) -> list[Column]:
    """`intervals`: the 90 % interval of the cores and DMA engines needed, and the share of draws
    that reach the target (machine view: the 5th, 50th and 95th percentile of every count)."""
    columns = _point_columns(swept, view) + [
        Column.of("serving_cores", "serving cores", "{:.0f}"), Column.of("worker_cores", "worker cores", "{:.0f}"),
        Column.of("flow_cores", "flow cores", "{:.0f}"),
        Column.of("dma_engines", "DMA engines", "{:.0f}"), _LINKS, _NICS, _OUTSTANDING, Column.of("reachable")]
    if intervals and view == "machine":
        columns += [Column.of(key.format(q=q), f"{name} {q}") for key, name in
                    (("serving_{q}_cores", "serving cores"), ("worker_{q}_cores", "worker cores"),
                     ("dma_{q}_engines", "DMA engines"), ("links_{q}", "links"), ("nics_{q}", "NICs"),
                     ("outstanding_{q}", "I/Os in flight")) for q in ("p05", "p50", "p95")]
        columns += [Column.of("reachable_share_ratio", "reachable in samples")]
    elif intervals:
        columns += [Column.of("serving_interval_cores", "serving cores 90%"),
                    Column.of("worker_interval_cores", "worker cores 90%"),
                    Column.of("dma_interval_engines", "DMA engines 90%"), Column("reachable_share", "reachable in samples")]
    return columns + [Column.of("why_not", "why not")]


def table_rows(report: dict[str, Any]) -> tuple[list[dict], list[dict] | None]:
    """The rows of the capacity table and of the 'what it takes' table (None without a target)."""
    from models.report import table_rows as rows_of

    target = report.get("target")
    capacity, targets = rows_of(report["points"]), None if target is None else rows_of(target["points"])
    intervals = report.get("intervals")
    if intervals:
        from models.uncertainty import table_rows as interval_rows
        for row, extra in zip(capacity, interval_rows(intervals["points"])):
            row.update(extra)
        if targets is not None and intervals.get("target"):
            for row, extra in zip(targets, interval_rows(intervals["target"]["points"], target=True)):
                row.update(extra)
    return capacity, targets


def tables(report: dict[str, Any], view: str, rows: tuple[list[dict], list[dict] | None] | None = None) -> list[Table]:
    """The capacity table (and the 'what it takes' table) of a plan report: a live one or a stored one.
    `rows`: the report's table_rows, when they are at hand already (one report, several formats)."""
    capacity_rows, target_rows = rows if rows is not None else table_rows(report)
    intervals = report.get("intervals")
    notes = list(report["notes"]) + (list(intervals["notes"]) if intervals else []) + \
        ([WIDE_NOTE] if view == "compact" else [])
    out = [Table(report["title"], capacity_columns(report["swept"], view, bool(intervals)), capacity_rows, notes)]
    target = report.get("target")
    if target is not None:
        with_target = bool(intervals and intervals.get("target"))
        out.append(Table(target["title"], target_columns(report["swept"], view, with_target), target_rows,
                         list(target["notes"])))
    return out


def tables_from_record(rec: Record, fmt: str = "md", wide: bool = False) -> list[Table]:
    """The tables of a stored `plan` record, from the record alone (no scenario, no model)."""
    report = rec.summary.get("report") if rec.kind == "modelled" else None
    if not isinstance(report, dict):
        raise InputError(f"record {rec.id} holds no plan report", "pick a record stored by `rdmarig plan`")
    return tables(report, _view(fmt, wide))


def render_tables(tabs: list[Table], fmt: str) -> str:
    if fmt == "json" and len(tabs) > 1:
        # one valid JSON document: [capacity table, target table]
        return "[\n" + ",\n".join(render(t, fmt) for t in tabs) + "\n]\n"
    return "\n".join(render(t, fmt) for t in tabs)


def modelled_record(s: Scenario, report: dict[str, Any]) -> Record:
    """The `plan` record: the inputs with both files' hashes, provenance, the per-path summary and the
    whole report (every point's figures in table order), so a table can be rebuilt from the store alone."""
    from results.provenance import collect
    from results.record import Record, file_sha256, scenario_ref
    from scenarios.profile import profile_chain

    target = report["target"]
    return Record(
        kind="modelled", name=f"plan:{s.name}",
        scenario=scenario_ref(s.name, s.path),
        params={"scenario": s.name, "platform": s.platform.name, "platform_path": s.platform.path,
                "platform_sha256": file_sha256(s.platform.path),
                "platform_files": [{"path": str(f), "sha256": file_sha256(f)} for f in profile_chain(s.platform.path)],
                "platform_sources": s.platform.sources(),
                "links": s.link.label, "protocol": s.link.protocol, "copy_paths": [p.name for p in s.copy_paths],
                "io_sizes_bytes": [float(v) for v in s.sweep.io_sizes],
                "swept": {unit_key(k): [float(v) for v in values] for k, values in s.sweep.fields},
                "target_bytes_per_s": None if target is None else target["rate_bytes_per_s"]},
        provenance=collect(),
        summary={**report["summary"], "report": {k: v for k, v in report.items() if k != "summary"}})


SamplesOption = typer.Option(None, "--samples", help="Draws of the platform figures' spreads for the median and "
                             "90% interval (default 1000, fixed seed); 0: point figures only.")


def check_samples(samples: Optional[int]) -> int:
    """The --samples count (None: models.uncertainty.DEFAULT_SAMPLES), refused outside SAMPLES_RANGE."""
    from models.uncertainty import DEFAULT_SAMPLES

    if samples is None:
        return DEFAULT_SAMPLES
    low, high = SAMPLES_RANGE
    if not low <= samples <= high:
        raise InputError(f"--samples {samples} is outside {low}..{high:,}",
                         f"give 0 (point figures only) up to {high} draws; the default is {DEFAULT_SAMPLES}")
    return samples


def _view(fmt: str, wide: bool) -> str:
    return "machine" if fmt in ("csv", "json") else "wide" if wide else "compact"


def _out_dir(out: Path) -> Path:
    """The --out directory, created if its parent exists; refused before anything is computed."""
    if not out.is_dir():
        if not out.parent.is_dir():
            raise InputError(f"--out {out}: the parent directory {out.parent} does not exist",
                             "create it first, or pass an existing directory")
        try:
            out.mkdir()
        except OSError as exc:
            raise InputError(f"--out {out}: cannot create the directory ({exc.strerror})",
                             "pass a writable directory") from None
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write into the directory ({exc.strerror})",
                         "pass a writable directory") from None
    return out


def plan(
    scenario: str = typer.Argument(..., help="Built-in scenario name (rdmarig scenarios list) or a .toml path."),
    platform: Optional[str] = typer.Option(None, "--platform", help="Platform name or .toml file; overrides the scenario's."),
    fmt: str = typer.Option("md", "--format", help="md, csv, json or html (json with --target: a list of both tables). "
                            "csv and json always carry every column, with units in the keys."),
    wide: bool = typer.Option(False, "--wide", help="md/html: add the utilisation of every resource."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory to write the table(s) into, in every format."),
    target: Optional[str] = typer.Option(None, "--target", help="Rate to reach, 1MB/s..10TB/s, e.g. 46GB/s: "
                                         "what it takes."),
    vs_measured: bool = typer.Option(False, "--vs-measured",
                                     help="Predicted next to measured: the scenario mirrors the stored `measure smbd` "
                                          "records on the calibrated profile of the place they were taken (default "
                                          "this-guest or this-host), predicted from the component fits alone."),
    samples: Optional[int] = SamplesOption,
    store: Optional[Path] = StoreOption,
) -> None:
    """Capacity table of a scenario: throughput, binding resource, cores and DMA engines busy, headroom."""
    from models import report as model_report
    from models.sweep import evaluate_scenario
    from scenarios.schema import MAX_TABLE_ROWS, check_grid_points, load_scenario

    if fmt not in EXTENSIONS:
        raise InputError(f"--format: unknown table format {fmt!r}", "use md, csv, json or html")
    if vs_measured:
        for option, given in (("--target", target), ("--out", out), ("--wide", wide or None), ("--samples", samples)):
            if given is not None:
                raise InputError(f"{option} does not go with --vs-measured",
                                 f"run the comparison without {option}, or the capacity table without --vs-measured")
        text = render(vs_measured_table(scenario, platform, store, machine=fmt in ("csv", "json")), fmt)
        typer.echo(text, nl=not text.endswith("\n"))
        return
    samples = check_samples(samples)
    target_rate = model_report.parse_target(target) if target is not None else None
    s = load_scenario(scenario, platform=platform)
    check_grid_points(s.sweep.points(len(s.copy_paths)), s.path, MAX_TABLE_ROWS)
    if target_rate is None:
        target_rate = s.target          # the scenario file's target: range-checked when it was read
    if out is not None:
        out = _out_dir(out)
    report = model_report.plan_report(evaluate_scenario(s), target_rate, samples)

    rows = table_rows(report)
    text = render_tables(tables(report, _view(fmt, wide), rows), fmt)
    typer.echo(text, nl=not text.endswith("\n"))
    rec = modelled_record(s, report)
    with open_store(store) as st:
        st.insert(rec)
    typer.echo(f"stored modelled record {rec.id} in {st.path}", err=True)
    if out is not None:
        for f in sorted(set(EXTENSIONS.values())):
            for t, stem in zip(tables(report, _view(f, wide), rows), ("", "-target")):
                path = out / f"plan-{s.name}{stem}.{f}"
                try:
                    path.write_text(render(t, f))
                except OSError as exc:
                    raise InputError(f"--out {out}: cannot write {path.name} ({exc.strerror})",
                                     "pass a writable directory") from None


VS_COLUMNS = [Column.of("io_size", "I/O size"), Column.of("copy_path"), Column.of("op"),
              Column("clients", "clients [count]", "{:d}"),
              Column("connections", "connections [count]", "{:d}"), Column("credits", "in flight [I/Os]", "{:d}"),
              Column.of("predicted_gbytes_per_s", "predicted", "{:.4f}"),
              Column.of("measured_gbytes_per_s", "measured", "{:.4f}"),
              Column.of("gbps_error_pct", "error", "{:+.0f}"),
              Column.of("gbps_spread_pct", "rounds' spread", "{:.0f}"),
              Column("host_steal_fraction", "host steal [share]", "{:.2f}"),
              Column("executed_fraction", "vCPU time executed [share of guest busy]", "{:.2f}"),
              Column.of("predicted_executed_gbytes_per_s", "predicted at it", "{:.4f}"),
              Column.of("gbps_executed_error_pct", "error", "{:+.0f}"),
              Column.of("predicted_server_cpu_s_per_gb", "predicted server", "{:.2f}"),
              Column.of("measured_server_cpu_s_per_gb", "measured server", "{:.2f}"),
              Column.of("cpu_error_pct", "error", "{:+.0f}"),
              Column.of("server_cpu_spread_pct", "rounds' spread", "{:.0f}"),
              Column.of("predicted_both_cpu_s_per_gb", "predicted both ends", "{:.2f}"),
              Column.of("measured_both_cpu_s_per_gb", "measured both ends", "{:.2f}"),
              Column.of("both_cpu_error_pct", "error", "{:+.0f}"),
              Column.of("predicted_softirq_cpu_s_per_gb", "predicted ksoftirqd", "{:.2f}"),
              Column.of("measured_softirq_cpu_s_per_gb", "measured ksoftirqd", "{:.2f}"),
              Column.of("server_side_cpu_error_pct", "server + ksoftirqd error", "{:+.0f}"),
              Column("binding", "model's binding resource"), Column("records", "records", "{:d}")]


def spread_note(rows: list[dict]) -> str:
    """How far apart repeated rounds of a point lie, beside how far the model misses them: a miss
    within its point's spread is as close as the measurement itself can tell."""
    parts = []
    for what, err, spread in (("throughput", "gbps_error_pct", "gbps_spread_pct"),
                              ("server CPU per GB", "cpu_error_pct", "server_cpu_spread_pct")):
        both = [(abs(r[err]), r[spread]) for r in rows if r[err] is not None and r[spread] is not None]
        if both:
            parts.append(f"{what}: median spread {statistics.median(sp for _, sp in both):.0f} %, "
                         f"{sum(e <= sp for e, sp in both)} of {len(both)} points' |error| within it")
    return ("rounds' spread = (max - min) / median over a point's repeated runs; " + "; ".join(parts))


def loaded_host_note(rows: list[dict], parts: list) -> str | None:
    """The points whose records ran on a loaded host (median host steal above rc.LOADED_HOST_STEAL)
    while the parts did not: named, and the errors over the other points beside them. None where no
    point is such, or where the parts' steal is not known or was above it too (the conditions note
    gives both sides' medians then)."""
    from models import report as model_report
    from rig import calibrate as rc

    steal = [v for v in map(rc.host_steal_fraction, parts) if v is not None]
    if not steal or statistics.median(steal) > rc.LOADED_HOST_STEAL:
        return None
    loaded = [r for r in rows if r["host_steal_fraction"] is not None and r["host_steal_fraction"] > rc.LOADED_HOST_STEAL]
    if not loaded:
        return None
    names = ", ".join(f"{r['copy_path']} {r['op']} {r['io_size']} (steal {r['host_steal_fraction']:.3f})" for r in loaded)
    flagged = {id(r) for r in loaded}
    rest = [r for r in rows if id(r) not in flagged and r["gbps_error_pct"] is not None
            and r["cpu_error_pct"] is not None and math.isfinite(r["gbps_error_pct"]) and math.isfinite(r["cpu_error_pct"])]
    errors = (f"the other {len(rest)}: throughput {model_report.error_summary([r['gbps_error_pct'] for r in rest])}; "
              f"server CPU per GB {model_report.error_summary([r['cpu_error_pct'] for r in rest])}"
              + (f"; server + ksoftirqd {model_report.error_summary(es)}"
                 if (es := [r['server_side_cpu_error_pct'] for r in rest if r['server_side_cpu_error_pct'] is not None])
                 else "") if rest else "no other point")
    return (f"{len(loaded)} point(s) ran on a loaded host (median host steal over {rc.LOADED_HOST_STEAL:.2f}; the "
            f"parts' {statistics.median(steal):.2f}), not like with like: {names}; {errors}")


def vs_measured_table(scenario: str, platform: Optional[str], store: Optional[Path], machine: bool = False) -> Table:
    """The scenario mirroring the stored smbd records, predicted (component fits only) and measured.
    `machine` (CSV, JSON): the I/O size in bytes."""
    from models import report as model_report
    from rig import calibrate as rc
    from rig.cli._common import open_store
    from scenarios.schema import load_platform, load_scenario
    from scenarios.units import format_size

    from rig.executed_time import all_in_executed_time

    with open_store(store, write=False) as st:
        everything = st.query(kind="measured")
    everything, converted = all_in_executed_time(everything)
    smbd = rc.smbd_records(everything)
    place = None
    left_out = 0
    if smbd:
        by_place = rc.places(smbd)
        place = max(by_place, key=lambda p: max(r.created for r in by_place[p]))
        left_out = len(smbd) - len(by_place[place])
        smbd = by_place[place]
    name = platform or ("this-guest" if place is None or place.is_guest else "this-host")
    try:
        plat = load_platform(name)
    except InputError as exc:
        raise InputError(f"--vs-measured: the calibrated profile {name!r}: {exc.cause}",
                         "calibrate the place first: `rdmarig calibrate host --place guest` (or --place host), "
                         "or pass --platform FILE") from None
    if not plat.measured:
        raise InputError(f"--vs-measured: {name} holds no measured figure",
                         "predictions rest on component fits: run `rdmarig calibrate host --place guest` first")
    fitted_at = rc.profile_places(plat, everything)
    if not fitted_at:
        raise InputError(f"--vs-measured: none of the records {plat.name}'s measured figures cite is in "
                         f"{store or 'the store'}: where it was calibrated cannot be checked",
                         "pass the --store it was calibrated from")
    if place is not None and fitted_at != {place}:
        raise InputError(f"--vs-measured: {plat.name} was calibrated from records of "
                         f"{'; '.join(sorted(p.label for p in fitted_at))}, the smbd records are of {place.label}",
                         "compare like with like: calibrate the profile from the records of the smbd runs' place")
    s = load_scenario(scenario, platform=plat)
    measured = rc.smbd_measured(smbd)
    configs = sorted(measured or rc.scenario_configs(s),
                     key=lambda c: (c.op, c.path, c.clients, c.connections, c.credits, c.serving_cpus, c.io_size))
    predicted = rc.smbd_predicted(s, configs)
    shares = {c: m.executed_fraction for c, m in (measured or {}).items()
              if m.executed_fraction is not None and not c.incast}
    at_share = rc.smbd_predicted(s, configs, shares) if shares else {}
    rows, eg, ec, eb, es, e_incast, ex = [], [], [], [], [], [], []
    for c in configs:
        pr, me = predicted.get(c), measured.get(c)
        if pr is None:
            continue
        row = {"io_size": format_size(c.io_size), "io_size_bytes": c.io_size, "copy_path": c.path, "op": c.op,
               "clients": c.clients, "connections": c.connections, "credits": c.credits,
               "serving_cpus": rc.pinned_label(c.serving_cpus), "predicted_gbytes_per_s": pr.gbytes_per_s,
               "predicted_server_cpu_s_per_gb": pr.server_cpu_s_per_gb, "binding": pr.binding,
               "predicted_both_cpu_s_per_gb": pr.server_cpu_s_per_gb + pr.client_cpu_s_per_gb + pr.softirq_cpu_s_per_gb,
               "measured_gbytes_per_s": None, "measured_server_cpu_s_per_gb": None, "gbps_error_pct": None,
               "cpu_error_pct": None, "measured_both_cpu_s_per_gb": None, "both_cpu_error_pct": None,
               "predicted_softirq_cpu_s_per_gb": pr.softirq_cpu_s_per_gb, "measured_softirq_cpu_s_per_gb": None,
               "server_side_cpu_error_pct": None, "records": 0, "gbps_spread_pct": None,
               "server_cpu_spread_pct": None, "executed_fraction": None, "predicted_executed_gbytes_per_s": None,
               "gbps_executed_error_pct": None, "host_steal_fraction": None}
        if me is not None and c.incast:
            # an MPI incast's aggregate: the server's total throughput (its records hold no CPU of the whole)
            row.update(measured_gbytes_per_s=me.gbytes_per_s, records=len(me.records),
                       host_steal_fraction=me.host_steal_fraction,
                       gbps_error_pct=model_report.error_pct(pr.gbytes_per_s, me.gbytes_per_s),
                       gbps_spread_pct=me.gbps_spread_pct)
            e_incast.append(row["gbps_error_pct"])
        elif me is not None:
            row.update(measured_gbytes_per_s=me.gbytes_per_s, measured_server_cpu_s_per_gb=me.server_cpu_s_per_gb,
                       host_steal_fraction=me.host_steal_fraction,
                       gbps_error_pct=model_report.error_pct(pr.gbytes_per_s, me.gbytes_per_s),
                       cpu_error_pct=model_report.error_pct(pr.server_cpu_s_per_gb, me.server_cpu_s_per_gb),
                       measured_both_cpu_s_per_gb=me.server_cpu_s_per_gb + me.client_cpu_s_per_gb,
                       records=len(me.records), gbps_spread_pct=me.gbps_spread_pct,
                       server_cpu_spread_pct=me.server_cpu_spread_pct)
            row["both_cpu_error_pct"] = model_report.error_pct(row["predicted_both_cpu_s_per_gb"],
                                                               row["measured_both_cpu_s_per_gb"])
            eg.append(row["gbps_error_pct"])
            ec.append(row["cpu_error_pct"])
            if c in at_share:
                row.update(executed_fraction=me.executed_fraction,
                           predicted_executed_gbytes_per_s=at_share[c].gbytes_per_s,
                           gbps_executed_error_pct=model_report.error_pct(at_share[c].gbytes_per_s, me.gbytes_per_s))
                ex.append(row["gbps_executed_error_pct"])
            eb.append(row["both_cpu_error_pct"])
            if me.softirq_cpu_s_per_gb is not None:
                # one kernel: the serving processes and the kernel threads that ran the rest of their posts' chains
                row["measured_softirq_cpu_s_per_gb"] = me.softirq_cpu_s_per_gb
                row["server_side_cpu_error_pct"] = model_report.error_pct(
                    pr.server_cpu_s_per_gb + pr.softirq_cpu_s_per_gb, me.server_cpu_s_per_gb + me.softirq_cpu_s_per_gb)
                es.append(row["server_side_cpu_error_pct"])
        rows.append(row)
    notes = [f"throughput: {model_report.error_summary(eg)}; server CPU per GB: {model_report.error_summary(ec)}; "
             f"both ends' CPU per GB: {model_report.error_summary(eb)}"
             if eg else "no complete single `measure smbd` run in the store"
             if measured else "no complete `measure smbd` record in the store: the scenario's own points, predicted only",
             *([f"server + ksoftirqd per GB (both ends in one kernel: the serving processes and the kernel threads "
                f"that ran the rest of their posts' chains; where the kernel runs a soft NIC's chain, in the poster, "
                f"in ksoftirqd or in the client process, is what the model gets least well, docs/smbd.md): "
                f"{model_report.error_summary(es)}"] if es else []),
             *([f"throughput predicted with the vCPU time the host executed while each point ran (its records' "
                f"executed share of their guest busy time; the rest of each vCPU's time as other tenants' load): "
                f"{model_report.error_summary(ex)}"] if ex else []),
             *([f"CPU in executed time: {converted} of {len(everything)} records carry the share of their guest "
                f"CPU time the host executed (provenance guest_cpu_executed) and are compared in executed "
                f"seconds, parts and whole alike (rig/executed_time.py); the rest in guest seconds"] if converted else []),
             *([spread_note(rows)] if any(r["server_cpu_spread_pct"] is not None for r in rows) else []),
             *([f"MPI incast aggregates (the server's total with clients = ranks - 1, the model's workload.clients): "
                f"throughput {model_report.error_summary(e_incast)}"] if e_incast else []),
             f"predicted: {s.name} on {plat.name} ({plat.path}), from its {len(plat.measured)} measured figures "
             f"(component records: verbs, copy) and {plat.base or 'its own'} figures; never from smbd records "
             f"(the column at the executed share takes only that condition from them)",
             "server CPU = the CPU of the server's threads and workers (on loopback that includes the receive work "
             "its sends trigger until the kernel hands the rest of a post's chain to ksoftirqd, neither end's: "
             "nic.soft_inline_time for a poster that sleeps on events); measured, with both ends in one kernel, it "
             "is the serving processes' time, and "
             "ksoftirqd's run time is counted with the client (the records' cpu_scope); both ends = server + client "
             "+ ksoftirqd in both columns"]
    twice = [r for r in smbd if r.name.startswith("smbd.") and "counted_cpu_per_s" not in r.summary
             and rc.one_kernel(r)]
    if twice:
        notes.append(f"{len(twice)} smbd records predate the one-kernel accounting (no counted_cpu_per_s): their "
                     "client CPU holds the softirq served inside the serving processes a second time, so their "
                     "measured both ends' CPU per GB is too high; re-measure to compare it")
    if place is not None:
        notes.append(rc.place_summary(place, smbd))
        parts = rc.places(rc.of_kind(everything, *rc.PROBES)).get(place, [])
        conditions = rc.conditions_note(parts, smbd)
        if conditions:
            notes.append(conditions)
        loaded = loaded_host_note(rows, parts)
        if loaded:
            notes.append(loaded)
    if left_out:
        notes.append(f"{left_out} smbd records of other places left out (one place per comparison)")
    columns = ([Column.of("io_size_bytes", "I/O size", "{:.0f}")] + VS_COLUMNS[1:]) if machine else VS_COLUMNS
    if any(r["serving_cpus"] for r in rows):
        # runs with --serving-cpus: which CPU each connection's serving process ran on ("" = the scheduler's choice)
        after = next(i for i, col in enumerate(columns) if col.key == "credits") + 1
        columns = columns[:after] + [Column("serving_cpus", "serving CPUs")] + columns[after:]
    return Table(f"{s.name} on {plat.name}: predicted vs measured", columns, rows, notes)
