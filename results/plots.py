"""Figures drawn from stored records only (never from a live run), with matplotlib's Agg backend.

A series plot picks two fields by dotted path (`params.size_bytes`, `summary.median_gbytes_per_s`)
and groups records into lines by a third (`name`, `params.path`), so any record kind can be drawn.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)

from results.record import Record  # noqa: E402
from scenarios.errors import InputError  # noqa: E402
from scenarios.units import unit_header  # noqa: E402


def field(record: Record, path: str) -> Any:
    """`summary.median_gbytes_per_s` -> record.summary['median_gbytes_per_s']; None if absent."""
    head, _, rest = path.partition(".")
    value: Any = getattr(record, head, None)
    for part in rest.split(".") if rest else []:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def series(records: Iterable[Record], x: str, y: str, group: str) -> dict[str, list[tuple[float, float]]]:
    """Points per group, sorted by x; records lacking x or y are left out."""
    lines: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rec in records:
        xv, yv = field(rec, x), field(rec, y)
        if isinstance(xv, (int, float)) and isinstance(yv, (int, float)):
            lines[str(field(rec, group))].append((float(xv), float(yv)))
    return {k: sorted(v) for k, v in lines.items()}


def _axis_label(path: str) -> str:
    """'summary.median_gbytes_per_s' -> 'median [GB/s]': the unit is read from the key's suffix."""
    return unit_header(path.rsplit(".", 1)[-1])


def plot_series(records: Iterable[Record], x: str, y: str, group: str, out: str | Path,
                title: str = "", logx: bool = True) -> Path:
    lines = series(records, x, y, group)
    if not lines:
        raise InputError(f"no stored record has both {x!r} and {y!r}",
                         "pick fields shown by `rdmarig results show ID`")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, points in sorted(lines.items()):
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", label=name)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(_axis_label(x))
    ax.set_ylabel(_axis_label(y))
    ax.set_title(title or f"{_axis_label(y)} by {_axis_label(x)}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
