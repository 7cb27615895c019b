"""`rdmarig results list | show | export | plot | import | compare`: read the result store (only
import writes)."""

from __future__ import annotations

import datetime as _dt
import json
import re
import sys
from pathlib import Path
from typing import Optional

import typer

from results import export as export_mod
from results.record import KINDS, RecordError, from_json
from results.store import Store
from results.tables import Column, Table, render
from rig.cli._common import (JsonOption, StoreOption, open_store, output_file, store_warnings,
                             write_output, write_stdout)
from rig.cli.plan import SamplesOption, check_samples
from scenarios.errors import InputError
from scenarios.units import parse_time

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

_LIST_COLUMNS = [
    Column("id", "id"), Column("created", "created (UTC)"), Column("kind", "kind"),
    Column("name", "name"), Column("headline", "headline"),
]
MAX_LIST = 10_000
# exit code of a read from a damaged store: what still reads was printed, the store needs recovery
EXIT_DAMAGED = 1
_DAY_S = 86_400.0
_AGE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|min|h|d|w)\s*$")
_AGE_UNIT_DAYS = {"d": 1, "w": 7}


def parse_since(text: str, now: _dt.datetime | None = None) -> _dt.datetime:
    """An ISO date/time (no zone given: UTC, as `results list` shows times) or an age ('90min',
    '2h', '3d', '1w') -> an aware UTC datetime. Anything else is refused."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    age = _AGE_RE.match(text)
    if age:
        value, unit = age.groups()
        seconds = float(value) * _AGE_UNIT_DAYS[unit] * _DAY_S if unit in _AGE_UNIT_DAYS else parse_time(text)
        try:
            return now - _dt.timedelta(seconds=seconds)
        except OverflowError:
            raise InputError(f"--since {text!r} reaches before year 1", "give a shorter age") from None
    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--since {text!r} is neither an ISO date/time nor an age",
                         "write it like 2026-11-30, 2026-11-30T14:00, 2026-11-30T14:00+01:00, "
                         "or an age: 90min, 2h, 3d, 1w") from None
    return when.replace(tzinfo=_dt.timezone.utc) if when.tzinfo is None else when.astimezone(_dt.timezone.utc)


def _check_kind(kind: Optional[str]) -> None:
    if kind is not None and kind not in KINDS:
        raise InputError(f"--kind {kind!r} is not a record kind", f"use {' or '.join(KINDS)}")


def _finish(st: Store) -> None:
    """Tell what the store held back; a damaged store ends the command with EXIT_DAMAGED."""
    for line in store_warnings(st):
        print(f"rdmarig: warning: {line}", file=sys.stderr)
    if st.damage is not None:
        raise typer.Exit(EXIT_DAMAGED)


def _headline(summary: dict) -> str:
    """The first few numeric summary figures, for a one-line overview."""
    parts = [f"{k}={v:.4g}" for k, v in summary.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)][:3]
    return " ".join(parts)


@app.command("list")
def list_(
    kind: Optional[str] = typer.Option(None, help="measured or modelled"),
    name: Optional[str] = typer.Option(None, help="record name or prefix, e.g. 'verbs' or 'copy.memcpy'"),
    since: Optional[str] = typer.Option(None, help="records created at or after: an ISO date/time "
                                        "(UTC unless it says otherwise), e.g. 2026-11-30 or "
                                        "2026-11-30T14:00+01:00, or an age: 90min, 2h, 3d, 1w"),
    limit: int = typer.Option(50, help=f"show the newest N records (1..{MAX_LIST})"),
    store: Optional[Path] = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """List stored records, oldest first (the newest --limit of them)."""
    _check_kind(kind)
    when = parse_since(since) if since is not None else None
    if not 1 <= limit <= MAX_LIST:
        raise InputError(f"--limit {limit} is outside 1..{MAX_LIST}",
                         "use `rdmarig results export` for every record")
    with open_store(store, write=False) as st:
        records = st.query(kind=kind, name=name, since=when, limit=limit)
        total = st.count(kind=kind, name=name, since=when) if len(records) == limit else len(records)
    if as_json:
        write_stdout(json.dumps([{"id": r.id, "created": r.created, "kind": r.kind, "name": r.name,
                                  "summary": r.summary} for r in records], indent=2) + "\n")
    else:
        rows = [{"id": r.id[:12], "created": r.created[:19], "kind": r.kind, "name": r.name,
                 "headline": _headline(r.summary)} for r in records]
        title = f"newest {len(rows)} of {total} records" if total > len(rows) else f"{total} records"
        write_stdout(render(Table(f"{title} in {st.path}", _LIST_COLUMNS, rows), "md") + "\n")
    _finish(st)


@app.command("show")
def show(
    record_id: str = typer.Argument(..., help="record id or a unique prefix of it (with --matrix: a run id)"),
    matrix: bool = typer.Option(False, "--matrix", help="the per-pair bandwidth matrix of a run under "
                                "`measure verbs --mpi`, outliers flagged; RUN is its run id (or a record's id)"),
    store: Optional[Path] = StoreOption,
) -> None:
    """Print one record as JSON, or a run's matrix (--matrix)."""
    if matrix:
        from results.matrix import matrices, run_records, table

        with open_store(store, write=False) as st:
            found = run_records(st.query(kind="measured"), record_id)
        write_stdout("\n".join(render(table(m), "md") for m in matrices(found)))
        _finish(st)
        return
    if not record_id.strip():
        raise InputError("the record id is empty", "give an id or its first characters (`rdmarig results list`)")
    with open_store(store, write=False) as st:
        write_stdout(st.get(record_id).to_json(indent=2) + "\n")
    _finish(st)


_EXPORTERS = {"jsonl": export_mod.export_jsonl, "csv": export_mod.export_csv}


@app.command("export")
def export(
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (whole records) or csv (summary rows; "
                            "counts and sizes as integers)"),
    out: Optional[Path] = typer.Option(None, "--out", help="file to write, in an existing directory "
                                       "(a name ending in .gz is written gzip-compressed); default: stdout"),
    kind: Optional[str] = typer.Option(None, help="measured or modelled"),
    name: Optional[str] = typer.Option(None, help="record name or prefix"),
    store: Optional[Path] = StoreOption,
) -> None:
    """Export records as JSON lines or CSV (from a damaged store: every record that still reads)."""
    if fmt not in _EXPORTERS:
        raise InputError(f"unknown export format {fmt!r}", "use --format jsonl or --format csv")
    _check_kind(kind)
    if out is not None:
        output_file(out)
    with open_store(store, write=False) as st:
        records = st.query(kind=kind, name=name)
    text = _EXPORTERS[fmt](records)
    if out is not None:
        write_output(out, export_mod.gzipped(text) if out.suffix == ".gz" else text)
        typer.echo(f"wrote {len(records)} records to {out}", err=True)
    else:
        write_stdout(text)
    _finish(st)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="JSON lines of records, as `rdmarig results export` writes them "
                                "(plain or gzip-compressed)"),
    store: Optional[Path] = StoreOption,
) -> None:
    """Add records from a JSON-lines file to a store, skipping ids it has: how the records saved
    from a damaged store go into a new one."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"{file}: cannot read ({exc.strerror})", "check the path") from None
    try:
        text = export_mod.ungzipped(data).decode("utf-8")
    except export_mod.DamagedGzip as exc:
        raise InputError(f"{file} is a damaged gzip file ({exc})",
                         "export the records again with `rdmarig results export --out FILE.jsonl.gz`") from None
    except UnicodeDecodeError:
        raise InputError(f"{file} is not UTF-8 text", "import a file written by `rdmarig results export`") from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(from_json(line))
            except RecordError as exc:
                raise InputError(f"{file} line {number}: {exc}",
                                 "import a file written by `rdmarig results export` (--format jsonl)") from None
    if not records:
        raise InputError(f"{file} holds no records", "import a file written by `rdmarig results export`")
    with open_store(store) as st:
        new = st.insert_many(records)
    typer.echo(f"imported {new} records into {st.path} ({len(records) - new} were there already)", err=True)


_DEFAULT_PLOT = Path("out/plot.png")


@app.command("plot")
def plot(
    y: str = typer.Option("throughput", "--y", help="what to plot: 'throughput' (each record kind's "
                          "GB/s figure) or a field path, e.g. summary.median_gbytes_per_s"),
    x: str = typer.Option("params.io_size_bytes", "--x", help="field on the x axis"),
    group: Optional[str] = typer.Option(None, "--group", help="comma-separated fields whose values make "
                                        "separate lines, e.g. name,params.path (default: the record name "
                                        "and the configuration params that differ)"),
    out: Path = typer.Option(_DEFAULT_PLOT, "--out", help="file to write: .png, .svg or .pdf, in an "
                             "existing directory (the default's out/ is created)"),
    kind: Optional[str] = typer.Option(None, help="measured or modelled"),
    name: Optional[str] = typer.Option(None, help="record name or prefix"),
    linear: bool = typer.Option(False, "--linear", help="linear x axis (default: log2)"),
    store: Optional[Path] = StoreOption,
) -> None:
    """Draw stored records: one line per configuration through the median of repeated runs, with
    a min..max band; x and y picked by field path."""
    from results import plots

    plots.check_metric(y)
    _check_kind(kind)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in plots.PLOT_FORMATS:
        raise InputError(f"--out {out}: cannot tell the image format from {out.suffix or 'no suffix'!r}",
                         f"end the file name in .{', .'.join(plots.PLOT_FORMATS)}")
    if out == _DEFAULT_PLOT:
        out.parent.mkdir(exist_ok=True)
    output_file(out)
    groups = [g.strip() for g in group.split(",") if g.strip()] if group is not None else None
    if groups is not None and not groups:
        raise InputError("--group is empty", "name fields, e.g. --group name,params.path")
    with open_store(store, write=False) as st:
        data = plots.build_series(st.query(kind=kind, name=name), x, y, groups)
    fig = plots.figure(data, logx=not linear)
    write_output(out, plots.render(fig, fmt))
    typer.echo(f"wrote {out}: {len(data.series)} lines from {data.records_used} stored points")
    if data.records_left_out:
        print(f"rdmarig: note: {data.records_left_out} stored points have no numeric {x} and {y}; "
              "left out", file=sys.stderr)
    _finish(st)


_MEASURED_COLUMNS = [Column("metric", "metric"), Column("unit", "unit"), Column("a", "A", "{:.4g}"),
                     Column("b", "B", "{:.4g}"), Column("change", "change", "{:+.4g}"),
                     Column.of("change_pct", "change", "{:+.1f}"), Column("n", "runs A vs B"),
                     Column("interval", "95% interval of the change"), Column("p_value", "p (Welch)", "{:.3g}"),
                     Column("significant", "significant")]


def _plan_columns(swept: list[str]) -> list[Column]:
    return ([Column.of("copy_path"), Column.of("io_size", "I/O size")] + [Column(k, k) for k in swept]
            + [Column.of("a_gbytes_per_s", "A", "{:.2f}"), Column.of("a_interval", "A 90%"),
               Column.of("b_gbytes_per_s", "B", "{:.2f}"), Column.of("b_interval", "B 90%"),
               Column.of("change_pct", "change", "{:+.1f}"), Column.of("binding"), Column("significant", "significant")])


def _compared(text: str, scenario: Optional[str], platform: Optional[str], samples: int,
              store: Optional[Path]) -> tuple[str, object, str]:
    """One side of a comparison: ('record', Record, label) or ('plan', plan report, label) of a
    scenario (on --platform) or a platform (under --scenario), evaluated now."""
    from scenarios.files import builtin_platforms, builtin_scenarios, file_kind

    named = text in builtin_scenarios() or text in builtin_platforms() or text.endswith(".toml") or Path(text).is_file()
    if not named:
        if platform is not None or scenario is not None:
            raise InputError(f"{text!r} is not a scenario or a platform, so --scenario/--platform cannot apply",
                             "give two scenarios (with --platform) or two platforms (with --scenario), or two record ids")
        with open_store(store, write=False) as st:
            try:
                rec = st.get(text)
            except InputError as exc:
                raise InputError(f"{exc.cause}, and no scenario or platform is named {text!r}",
                                 "give a record id (`rdmarig results list`), a scenario or a platform "
                                 "(`rdmarig scenarios list`)") from None
        return "record", rec, f"{rec.id[:12]} ({rec.name})"
    from models.report import plan_report
    from models.sweep import evaluate_scenario
    from scenarios.schema import MAX_TABLE_ROWS, check_grid_points, load_scenario

    if file_kind(text) == "platform":
        if platform is not None:
            raise InputError(f"{text!r} is a platform; --platform names the platform two scenarios run on",
                             "compare two platforms with --scenario, or two scenarios with --platform")
        if scenario is None:
            raise InputError(f"{text!r} is a platform: comparing platforms needs the scenario they run",
                             "add --scenario NAME, e.g. --scenario smbdirect-2x200g")
        s = load_scenario(scenario, platform=text)
    else:
        if scenario is not None:
            raise InputError(f"{text!r} is a scenario; --scenario names the scenario two platforms run",
                             "compare two scenarios with --platform, or two platforms with --scenario")
        s = load_scenario(text, platform=platform)
    check_grid_points(s.sweep.points(len(s.copy_paths)), s.path, MAX_TABLE_ROWS)
    return "plan", plan_report(evaluate_scenario(s), None, samples), f"{s.name} on {s.platform.name}"


@app.command("compare")
def compare(
    a: str = typer.Argument(..., help="A: a record id (or prefix), a scenario, or a platform"),
    b: str = typer.Argument(..., help="B: the same kind of thing as A"),
    scenario: Optional[str] = typer.Option(None, "--scenario", help="the scenario two platforms are compared on"),
    platform: Optional[str] = typer.Option(None, "--platform", help="the platform two scenarios are compared on"),
    samples: Optional[int] = SamplesOption,
    fmt: str = typer.Option("md", "--format", help="md, csv or json"),
    store: Optional[Path] = StoreOption,
) -> None:
    """B against A, per metric: the change, its interval, significant or not (bootstrap and Welch's
    t-test on the repetitions of measured records; the model's 90% intervals for plans); differences
    of host, kernel and rig version flagged."""
    from results import compare as cmp

    if fmt not in ("md", "csv", "json"):
        raise InputError(f"--format: unknown format {fmt!r}", "use md, csv or json")
    n = check_samples(samples)
    sides = [_compared(x, scenario, platform, n, store) for x in (a, b)]
    measured = [kind == "record" and obj.kind == "measured" for kind, obj, _ in sides]
    (_, obj_a, label_a), (_, obj_b, label_b) = sides
    if measured[0] != measured[1]:
        first, second = (label_a, label_b) if measured[0] else (label_b, label_a)
        raise InputError(f"{first} is a measurement and {second} a plan",
                         "compare like with like: two measured records, or two plans (records, scenarios, platforms)")
    if measured[0]:
        result = cmp.compare_measured(obj_a, obj_b)
        columns = _MEASURED_COLUMNS
    else:
        reports = [obj.summary.get("report") if kind == "record" else obj for kind, obj, _ in sides]
        if not all(isinstance(r, dict) and isinstance(r.get("points"), dict) for r in reports):
            raise InputError("a modelled record holds no plan report", "compare records stored by `rdmarig plan`")
        records = [obj for kind, obj, _ in sides if kind == "record"]
        extra = cmp.flags(*records, params=False) if len(records) == 2 else []
        result = cmp.compare_plans(reports[0], reports[1], label_a, label_b,
                                   cmp.setting_flags(reports[0], reports[1]) + extra)
        columns = _plan_columns([k for k in cmp.swept_keys(reports[0]) if k in cmp.swept_keys(reports[1])])
    table = Table(result.title, columns, result.rows, result.flags + result.notes)
    write_stdout(render(table, fmt) + ("" if fmt != "md" else "\n"))
    if fmt == "csv":
        for line in result.flags:
            print(f"rdmarig: note: {line}", file=sys.stderr)
