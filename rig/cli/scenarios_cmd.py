"""`rdmarig scenarios list | show NAME | check FILE`: the built-in scenarios and platforms."""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

import typer

from results.tables import Column, Table, render
from rig.cli._common import JsonOption
from scenarios import schema

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """Built-in scenarios and platform profiles."""
    rows = []
    for name, path in schema.builtin_scenarios().items():
        s = schema.load_scenario(path)
        rows.append({"kind": "scenario", "name": name, "description": s.description, "path": str(path)})
    for name, path in schema.builtin_platforms().items():
        p = schema.load_platform(path)
        rows.append({"kind": "platform", "name": name, "description": p.description, "path": str(path)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("built-in scenarios and platforms",
                  [Column("kind", "kind"), Column("name", "name"), Column("description", "description")], rows)
    typer.echo(render(table, "md"), nl=False)


def _describe(s: schema.Scenario) -> dict:
    p = s.platform
    return {
        "name": s.name, "description": s.description, "path": s.path,
        "links": s.link.label, "protocol": s.link.protocol, "medium": s.link.medium, "mtu_bytes": s.link.mtu,
        "workload": dataclasses.asdict(s.workload),
        "copy_paths": [{"name": c.name, "description": c.description, "dma_api": c.dma_api or None,
                        "copies": [f"{x.who}:{x.source}" for x in c.copies]} for c in s.copy_paths],
        "io_sizes_bytes": list(s.sweep.io_sizes),
        "sweep": {k: list(v) for k, v in s.sweep.fields},
        "points": s.sweep.points(len(s.copy_paths)),
        "platform": {"name": p.name, "description": p.description, "path": p.path, "base": p.base or None,
                     "measured": sorted(p.measured),
                     "dma_engines": [{"name": e.name, "count": e.count, "apis": list(e.apis)} for e in p.dma],
                     "sources": p.sources()},
    }


@app.command("show")
def show(name: str = typer.Argument(..., help="Scenario name or .toml path."),
         platform: Optional[str] = typer.Option(None, "--platform", help="Platform name or file to use instead."),
         as_json: bool = JsonOption) -> None:
    """Show a scenario, its platform and every figure's source."""
    s = schema.load_scenario(name, platform=platform)
    doc = _describe(s)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    lines = [f"{s.name}: {s.description}", f"  file: {s.path}",
             f"  network: {s.link.label} {s.link.protocol} over {s.link.medium}, MTU {s.link.mtu:g} B",
             f"  workload: {s.workload.transport} {s.workload.operation}, {s.workload.connections} connection(s), "
             f"{s.workload.outstanding_per_connection} outstanding each, {s.workload.io_cores} I/O cores",
             f"  copy paths: {', '.join(c.name for c in s.copy_paths)}",
             f"  sweep: {doc['points']} points", f"  platform: {_platform_line(s.platform)}"]
    lines += [f"    {k}: {v}" for k, v in sorted(s.platform.sources().items())]
    typer.echo("\n".join(lines))


def _platform_line(p: schema.Platform) -> str:
    """'this-host (/path), base epyc-9654-cx7, 6 figures measured: cpu.copy_rate_cache, ...'"""
    line = f"{p.name} ({p.path})"
    if p.base:
        line += f", base {p.base}"
    if p.measured:
        line += f", {len(p.measured)} figures measured: {', '.join(sorted(p.measured))}"
    return line


@app.command("check")
def check(file: str = typer.Argument(..., help="Scenario or platform .toml file (or built-in name)."),
          platform: Optional[str] = typer.Option(None, "--platform", help="Platform to check the scenario against.")) -> None:
    """Validate a scenario (or platform) file; exit 2 with the field to fix when it is wrong."""
    is_platform = schema.file_kind(file) == "platform"
    if is_platform:
        p = schema.load_platform(file)
        typer.echo(f"ok: platform {_platform_line(p)}; {len(p.sources())} sourced figures")
        return
    s = schema.load_scenario(file, platform=platform)
    typer.echo(f"ok: scenario {s.name} on {s.platform.name}, {s.sweep.points(len(s.copy_paths))} points")
