"""`rdmarig results list | show | export`: read the result store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from results import store as store_mod
from results.tables import Column, Table, render
from rig.cli._common import JsonOption, StoreOption, open_store
from scenarios.errors import InputError

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

_LIST_COLUMNS = [
    Column("id", "id"), Column("created", "created (UTC)"), Column("kind", "kind"),
    Column("name", "name"), Column("headline", "headline"),
]


def _headline(summary: dict) -> str:
    """The first few numeric summary figures, for a one-line overview."""
    parts = [f"{k}={v:.4g}" for k, v in summary.items() if isinstance(v, (int, float))][:3]
    return " ".join(parts)


@app.command("list")
def list_(
    kind: Optional[str] = typer.Option(None, help="measured or modelled"),
    name: Optional[str] = typer.Option(None, help="record name or prefix, e.g. 'verbs' or 'copy.memcpy'"),
    since: Optional[str] = typer.Option(None, help="ISO date/time, e.g. 2026-11-30"),
    limit: int = typer.Option(50, help="newest N records"),
    store: Optional[Path] = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """List stored records, oldest first."""
    with open_store(store) as st:
        records = st.query(kind=kind, name=name, since=since, limit=limit)
    if as_json:
        typer.echo(json.dumps([{"id": r.id, "created": r.created, "kind": r.kind, "name": r.name,
                                "summary": r.summary} for r in records], indent=2))
        return
    rows = [{"id": r.id[:12], "created": r.created[:19], "kind": r.kind, "name": r.name,
             "headline": _headline(r.summary)} for r in records]
    typer.echo(render(Table(f"{len(rows)} records in {st.path}", _LIST_COLUMNS, rows), "md"))


@app.command("show")
def show(
    record_id: str = typer.Argument(..., help="record id or a unique prefix of it"),
    store: Optional[Path] = StoreOption,
) -> None:
    """Print one record as JSON."""
    with open_store(store) as st:
        typer.echo(st.get(record_id).to_json(indent=2))


@app.command("export")
def export(
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (whole records) or csv (summary rows)"),
    out: Optional[Path] = typer.Option(None, "--out", help="file to write; default: stdout"),
    kind: Optional[str] = typer.Option(None, help="measured or modelled"),
    name: Optional[str] = typer.Option(None, help="record name or prefix"),
    store: Optional[Path] = StoreOption,
) -> None:
    """Export records as JSON lines or CSV."""
    exporters = {"jsonl": store_mod.export_jsonl, "csv": store_mod.export_csv}
    if fmt not in exporters:
        raise InputError(f"unknown export format {fmt!r}", "use --format jsonl or --format csv")
    with open_store(store) as st:
        text = exporters[fmt](st.query(kind=kind, name=name))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        typer.echo(f"wrote {out}", err=True)
    else:
        typer.echo(text, nl=False)


@app.command("plot")
def plot(
    y: str = typer.Option(..., "--y", help="field to plot, e.g. summary.median_gbytes_per_s"),
    x: str = typer.Option("params.io_size_bytes", "--x", help="field on the x axis"),
    group: str = typer.Option("name", "--group", help="field whose values make separate lines"),
    out: Path = typer.Option(Path("out/plot.png"), "--out", help="PNG file to write"),
    kind: Optional[str] = typer.Option(None, help="measured or modelled"),
    name: Optional[str] = typer.Option(None, help="record name or prefix"),
    linear: bool = typer.Option(False, "--linear", help="linear x axis (default: log2)"),
    store: Optional[Path] = StoreOption,
) -> None:
    """Draw stored records: one line per group, x and y picked by dotted field path."""
    from results.plots import plot_series

    with open_store(store) as st:
        records = st.query(kind=kind, name=name)
    typer.echo(f"wrote {plot_series(records, x, y, group, out, logx=not linear)}")
