"""Tables from rows: Markdown (terminal), CSV, JSON, HTML. Units live in the column headers.

A table is a list of columns and a list of row dicts. A column is (key, header, format):
`("gbytes_per_s", "throughput [GB/s]", "{:.2f}")`. Renderers never compute; they only format.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from scenarios.units import unit_header


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str = "{}"

    @classmethod
    def of(cls, key: str, name: str | None = None, fmt: str = "{}") -> "Column":
        """A column whose header's unit comes from the key (scenarios.units catalogue):
        Column.of("tx_system_cpu_s_per_gb", "tx sys") -> header 'tx sys [CPU-s/GB]'."""
        return cls(key, unit_header(key, name), fmt)

    def cell(self, row: dict[str, Any]) -> str:
        value = row.get(self.key)
        if value is None:
            return "-"
        try:
            return self.fmt.format(value)
        except (ValueError, TypeError):
            return str(value)


@dataclass
class Table:
    title: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def to_markdown(table: Table) -> str:
    cells = [[c.cell(r) for c in table.columns] for r in table.rows]
    headers = [c.header for c in table.columns]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    numeric = [all(_looks_numeric(row[i]) for row in cells) for i in range(len(headers))]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "| " + " | ".join(parts) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                         for w, num in zip(widths, numeric)) + "|"
    out = [f"### {table.title}", "", line(headers), sep] + [line(r) for r in cells]
    if table.notes:
        out += [""] + [f"- {n}" for n in table.notes]
    return "\n".join(out) + "\n"


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace("%", "").replace("x", ""))
        return True
    except ValueError:
        return text == "-"


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: empty for None, a whole float without its '.0' (65536, not 65536.0)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.header for c in table.columns])
    for row in table.rows:
        writer.writerow([csv_cell(row.get(c.key)) for c in table.columns])
    return buf.getvalue()


def to_json(table: Table) -> str:
    doc = {
        "title": table.title,
        "columns": [{"key": c.key, "header": c.header} for c in table.columns],
        "rows": [{c.key: row.get(c.key) for c in table.columns} for row in table.rows],
        "notes": table.notes,
    }
    return json.dumps(doc, indent=2, default=float)


def to_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c.header)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c.cell(r))}</td>" for c in table.columns) + "</tr>"
                   for r in table.rows)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
    return (f"<h3>{html.escape(table.title)}</h3>\n<table>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>{body}</tbody>\n</table>\n" + (f"<ul>{notes}</ul>\n" if notes else ""))


RENDERERS = {"md": to_markdown, "markdown": to_markdown, "csv": to_csv, "json": to_json, "html": to_html}
EXTENSIONS = {"md": "md", "markdown": "md", "csv": "csv", "json": "json", "html": "html"}


def render(table: Table, fmt: str) -> str:
    try:
        return RENDERERS[fmt](table)
    except KeyError:
        from scenarios.errors import InputError
        raise InputError(f"unknown table format {fmt!r}", f"use one of {', '.join(sorted(RENDERERS))}") from None
