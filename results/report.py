"""The capacity-planning report: one self-contained HTML file built from stored records alone.

Every image is inlined as a data: URI, there is no script and nothing is fetched from the
network, so the file reads the same offline, in a mail, with scripts off. The same figures are
written as PNG and SVG, the tables as CSV. The report is rebuilt from the plan record (and the
measured records it compares with): `rdmarig report --record ID` draws it again from the store.

    verdicts(report)          one sentence per copy path: what binds, at what rate, what it takes
    fleet(report, rate)       servers needed for an aggregate rate, per copy path
    sources(rec)              every platform figure with its source and spread
    build(rec, ...)           -> Report: the HTML text and every file beside it (name -> bytes)

A new section is one function returning HTML, added to SECTIONS' order in `build`.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from results import plan_plots
from results.plots import render
from results.record import Record
from results.tables import Column, Table, to_csv, to_html
from scenarios.errors import InputError
from scenarios.fields import span
from scenarios.platform import flat_name
from scenarios.units import TB, format_size, parse_rate, to_gbytes_per_s

DEFAULT_FLEET_RATE = 1 * TB          # the aggregate rate the fleet line sizes for, bytes/s
# A fleet's aggregate: from one server's worth to the biggest storage clusters (~1 PB/s is ~20,000
# servers of 46 GB/s); outside it the answer is 0 or a typo.
FLEET_RATE = span("1GB/s", "1000TB/s", parse_rate, "from one server's worth to ~20,000 servers of 46 GB/s")
FIGURES = (("throughput", "Throughput vs I/O size, with the links' and PCIe's ceilings"),
           ("bottlenecks", "Utilisation of every resource per copy path"),
           ("needs", "Cores and DMA engines needed vs target throughput"),
           ("efficiency", "Gbit/s per busy core per copy path"),
           ("vs-measured", "Model vs measured"))
_STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 1.5em auto; padding: 0 1em; color: #111; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: .8em; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; white-space: nowrap; }
.wide { overflow-x: auto; }
th { background: #f0f0f0; } td:nth-child(-n+2) { text-align: left; }
table.sources td { text-align: left; vertical-align: top; white-space: normal; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-weight: bold; margin-bottom: .3em; }
.verdict li { margin: .3em 0; } .small { font-size: .85em; color: #444; }
"""


@dataclass
class Report:
    html: str
    files: dict[str, bytes] = field(default_factory=dict)       # figures (png, svg) and tables (csv)
    figures: list[str] = field(default_factory=list)            # the figure kinds drawn
    left_out: dict[str, str] = field(default_factory=dict)      # figure kind -> why it is not there


# ---- the figures a report is made of -------------------------------------------------------------

_BINDING = {"links": "the {links} links bind", "pcie": "PCIe binds", "dram": "DRAM bandwidth binds",
            "cpu-serving": "the {serving} serving cores bind", "cpu-workers": "the {workers} async worker cores bind",
            "cpu-all": "all {cores} cores bind", "dma": "the DMA engines bind",
            "pipeline": "the {in_flight} I/Os in flight bind"}


def binding_phrase(binding: str, setting: dict[str, Any]) -> str:
    """'cpu-serving' -> 'the 4 serving cores bind' (counts from the record's setting)."""
    counts = {"links": setting.get("links", ""),
              "serving": min(setting.get("io_cores", 0), setting.get("connections", 0)),
              "workers": setting.get("async_workers", ""), "cores": setting.get("cores", ""),
              "in_flight": setting.get("connections", 0) * setting.get("outstanding_per_connection", 0)}
    return _BINDING.get(binding, f"{binding} binds").format(**counts)


def best_points(report: dict[str, Any]) -> dict[str, int]:
    """Per copy path the point of its highest throughput (the first in table order among equals)."""
    pts = report["points"]
    best: dict[str, int] = {}
    for i, (path, X) in enumerate(zip(pts["copy_path"], pts["throughput_bytes_per_s"])):
        if path not in best or (X or 0) > (pts["throughput_bytes_per_s"][best[path]] or 0):
            best[path] = i
    return best


def _interval(report: dict[str, Any], i: int) -> tuple[float, float] | None:
    iv = (report.get("intervals") or {}).get("points")
    if not iv or iv["throughput_p05_bytes_per_s"][i] is None:
        return None
    return iv["throughput_p05_bytes_per_s"][i], iv["throughput_p95_bytes_per_s"][i]


def _gb(v: float) -> str:
    return f"{to_gbytes_per_s(v):.1f}"


def verdicts(report: dict[str, Any]) -> list[str]:
    """One sentence per copy path at its best point: what binds there, the rate with its 90 %
    interval and the resources' shares of the draws, and what the plan's target takes."""
    pts = report["points"]
    setting = report.get("setting") or {}
    iv = (report.get("intervals") or {}).get("points")
    target = report.get("target")
    out = []
    for path, i in best_points(report).items():
        X = pts["throughput_bytes_per_s"][i]
        if not X:
            why = target["points"]["why_not"][i] if target else f"{pts['binding'][i]}"
            out.append(f"{path}: nothing flows at any I/O size: {why}")
            continue
        text = f"{path}: {binding_phrase(pts['binding'][i], setting)} at {_gb(X)} GB/s"
        span = _interval(report, i)
        if span:
            text += f" [{_gb(span[0])}-{_gb(span[1])}]"
        if iv and "," in (iv.get("binds") or [""] * (i + 1))[i]:
            text += f" ({iv['binds'][i]} of the draws)"
        text += f" with {format_size(pts['io_size_bytes'][i])} I/Os"
        if target:
            text += "; " + _target_clause(target, i, X)
        out.append(text)
    return out


def _target_clause(target: dict[str, Any], i: int, X: float) -> str:
    rate = target["rate_bytes_per_s"]
    t = {k: v[i] for k, v in target["points"].items()}
    if X >= rate * (1 - 1e-9):
        return f"{_gb(rate)} GB/s is reached as it is"
    if t["reachable"] != "yes":
        return f"{_gb(rate)} GB/s is out of reach: {t['why_not']}"
    parts = [f"{t['serving_cores']:.0f} serving cores"]
    if t["worker_cores"]:
        parts.append(f"{t['worker_cores']:.0f} worker cores")
    if t["dma_engines"]:
        parts.append(f"{t['dma_engines']:.0f} DMA engines")
    parts.append(f"{t['links']:.0f} links on {t['nics']:.0f} NIC{'s' if t['nics'] != 1 else ''}")
    return f"{_gb(rate)} GB/s takes {', '.join(parts)}"


@dataclass(frozen=True)
class FleetLine:
    path: str
    servers: int | None                  # None: nothing flows on this path
    low: int | None = None               # from the 95th percentile of one server's rate
    high: int | None = None              # from the 5th percentile


def fleet(report: dict[str, Any], rate: float) -> list[FleetLine]:
    """Servers needed to move `rate` bytes/s together, per copy path at its best point (one
    server's point figure; its 90 % interval gives the range of servers)."""
    pts = report["points"]
    out = []
    for path, i in best_points(report).items():
        X = pts["throughput_bytes_per_s"][i]
        if not X:
            out.append(FleetLine(path, None))
            continue
        span = _interval(report, i)
        low, high = (None, None) if not span or not span[0] else (_servers(rate, span[1]), _servers(rate, span[0]))
        out.append(FleetLine(path, _servers(rate, X), low, high))
    return out


def _servers(rate: float, per_server: float) -> int:
    return int(math.ceil(rate / per_server - 1e-9))


def fleet_text(report: dict[str, Any], rate: float) -> str:
    what = f"SMB2 {(report.get('setting') or {}).get('operation', 'read').upper()} payload"
    parts = []
    for line in fleet(report, rate):
        if line.servers is None:
            parts.append(f"{line.path}: none (nothing flows)")
        else:
            span = f" [{line.low}-{line.high}]" if line.low is not None else ""
            parts.append(f"{line.path}: {line.servers}{span}")
    return f"{to_gbytes_per_s(rate):g} GB/s of {what} takes, in servers like this one: " + "; ".join(parts)


def sources(rec: Record) -> list[dict[str, str]]:
    """Every platform figure the plan rests on with its source, and its spread where it has one."""
    inputs = ((rec.summary.get("report") or {}).get("intervals") or {}).get("inputs") or {}
    rows = []
    for key, source in sorted((rec.params.get("platform_sources") or {}).items()):
        spread = inputs.get(flat_name(key)) if "." in key else None
        rows.append({"figure": key, "source": source, "spread": spread["text"] if spread else "",
                     "spread_source": spread["source"] if spread else ""})
    return rows


# ---- HTML ---------------------------------------------------------------------------------------

def _e(text: Any) -> str:
    return html.escape(str(text))


def _img(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{_e(name)}"><figcaption>{_e(caption)}</figcaption>'
            f'<img alt="{_e(caption)}" src="data:image/png;base64,{data}"></figure>')


def _table_html(table: Table) -> str:
    return f'<div class="wide">{to_html(table)}</div>'


def _sources_html(rows: list[dict[str, str]], rec: Record) -> str:
    body = "".join(f"<tr><td>{_e(r['figure'])}</td><td>{_e(r['source'])}</td><td>{_e(r['spread'])}</td>"
                   f"<td>{_e(r['spread_source'])}</td></tr>" for r in rows)
    files = [f"scenario {rec.scenario.get('path', '')} sha256 {rec.scenario.get('sha256', '')}"] if rec.scenario else []
    files += [f"platform {f['path']} sha256 {f['sha256']}" for f in rec.params.get("platform_files") or []]
    return ('<table class="sources"><thead><tr><th>figure</th><th>source</th><th>spread</th><th>source of the spread'
            f'</th></tr></thead><tbody>{body}</tbody></table>'
            + "<ul class=\"small\">" + "".join(f"<li>{_e(f)}</li>" for f in files) + "</ul>")


def _setting_html(report: dict[str, Any]) -> str:
    s = report.get("setting") or {}
    rows = [("scenario", f"{s.get('scenario', '')}: {s.get('scenario_description', '')}"),
            ("platform", f"{s.get('platform', '')}: {s.get('platform_description', '')}"),
            ("links", f"{s.get('links', '')} {s.get('protocol', '')}, MTU {s.get('mtu_bytes', 0):.0f} B"),
            ("workload", f"SMB2 {str(s.get('operation', '')).upper()} over {s.get('transport', '')}, "
                         f"{s.get('connections', '')} connections x {s.get('outstanding_per_connection', '')} "
                         f"in flight, {s.get('io_cores', '')} I/O cores, {s.get('async_workers', '')} async workers")]
    rows += [(f"copy path {name}", text) for name, text in (s.get("copy_paths") or {}).items()]
    return ('<table class="sources"><tbody>' + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
            + "</tbody></table>")


def _provenance_html(rec: Record) -> str:
    p = rec.provenance
    items = [f"record {rec.id} (kind {rec.kind}, name {rec.name}), created {rec.created}",
             f"host {p.get('host')}, kernel {p.get('kernel')}, rdmarig {p.get('rdmarig')}, git {p.get('git_sha')}",
             f"rebuild this report from the store: rdmarig report --record {rec.id} --out DIR"]
    return "<ul class=\"small\">" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def build(rec: Record, tables: Sequence[Table], csv_tables: Sequence[Table] = (), measured: Sequence[Record] = (),
          fleet_rate: float = DEFAULT_FLEET_RATE, svg: bool = True) -> Report:
    """The report of a plan record: `tables` are the capacity table (and the 'what it takes'
    table) as shown; `csv_tables` the same with every column, written as CSV files; `measured` the
    measured records the model is compared with."""
    report = plan_plots.report_of(rec)
    name = (report.get("setting") or {}).get("scenario") or rec.name.split(":", 1)[-1]
    out = Report(html="")
    images = []
    for kind, caption in FIGURES:
        try:
            fig = plan_plots.draw(kind, rec, measured)
        except InputError as exc:                   # nothing to draw (no measured record): said, not fatal
            out.left_out[kind] = exc.cause
            continue
        png = render(fig, "png")
        out.files[f"{kind}.png"] = png
        if svg:
            out.files[f"{kind}.svg"] = render(fig, "svg")
        out.figures.append(kind)
        images.append(_img(kind, png, caption))
    for table, stem in zip(csv_tables, ("", "-target")):
        out.files[f"plan-{name}{stem}.csv"] = to_csv(table).encode()
    source_rows = sources(rec)
    out.files["sources.csv"] = to_csv(Table("sources", [Column(k, k.replace("_", " ")) for k in
                                                        ("figure", "source", "spread", "spread_source")],
                                            source_rows)).encode()
    notes = list(report.get("notes") or []) + list((report.get("intervals") or {}).get("notes") or [])
    left = "".join(f"<li>{_e(FIGURE_NAMES.get(k, k))}: {_e(why)}</li>" for k, why in out.left_out.items())
    body = [
        f"<h1>Capacity plan: {_e(report['title'])}</h1>",
        _provenance_html(rec),
        "<h2 id=\"verdict\">Verdict per copy path</h2><ul class=\"verdict\">"
        + "".join(f"<li>{_e(v)}</li>" for v in verdicts(report)) + "</ul>",
        f"<h2 id=\"fleet\">Fleet</h2><p>{_e(fleet_text(report, fleet_rate))}</p>",
        "<h2 id=\"figures\">Figures</h2>" + "".join(images) + (f"<ul class=\"small\">{left}</ul>" if left else ""),
        "<h2 id=\"capacity\">Capacity</h2>" + (_table_html(tables[0]) if tables else ""),
        "<h2 id=\"what-it-takes\">What it takes</h2>" + (_table_html(tables[1]) if len(tables) > 1 else
                                                        "<p>no target in this plan</p>"),
        "<h2 id=\"setting\">Scenario and platform</h2>" + _setting_html(report),
        "<h2 id=\"sources\">Sources of every figure</h2>" + _sources_html(source_rows, rec),
        "<h2 id=\"notes\">Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>",
    ]
    out.html = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{_e(report['title'])}</title><style>{_STYLE}</style></head>\n<body>\n"
                + "\n".join(body) + "\n</body></html>\n")
    return out


FIGURE_NAMES = dict(FIGURES)
