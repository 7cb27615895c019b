"""Figures drawn from stored records only (never from a live run), with matplotlib's Agg backend.

A series plot picks two fields by dotted path (`params.io_size_bytes`, `summary.median_gbytes_per_s`)
or a named metric (`throughput`: each record kind's headline rate, see METRICS) and splits the
records into lines by name and by the parameters that name a configuration (SERIES_PARAMS), or by
fields the caller names. Repeated runs at one x are aggregated: the line goes through the median,
a band spans min..max, and each point knows how many runs it stands for.

Modelled (`plan`) records hold one model point per entry of their report's points (older ones:
of their samples); they are drawn as one point each, with the point's copy path and swept values
as its params. The figures of a plan record alone (ceilings, intervals, utilisation, needs) are
in results/plan_plots.py.

Building the series (`build_series`) is apart from drawing (`figure`) and encoding (`render`), so
tests read the plotted data back and new figures reuse the first two steps.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field as dc_field
from types import SimpleNamespace
from typing import Any, Iterable, Iterator, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402  (backend must be chosen first)
from matplotlib.ticker import FuncFormatter  # noqa: E402

import numpy as np  # noqa: E402

from results.record import Record  # noqa: E402
from scenarios.errors import InputError  # noqa: E402
from scenarios.params import unit_key as unit_key_of  # noqa: E402
from scenarios.units import IO_SIZE_KEY, format_size, split_unit, to_gbytes_per_s, unit_header  # noqa: E402

DEFAULT_X = f"params.{IO_SIZE_KEY}"

# Named metrics: the field that holds it in each record kind, first present wins. The name's key
# (its unit suffix) labels the axis; every field listed carries that same unit.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "throughput": ("throughput_gbytes_per_s", (
        "summary.median_gbytes_per_s",         # copy.socket (median over repetitions)
        "summary.median_total_gbytes_per_s",   # copy.memcpy (all copiers together)
        "summary.bw_average_gbytes_per_s",     # verbs.*.bw, perftest.*
        "summary.gbytes_per_s",                # smbd.read, smbd.write (payload)
        "summary.throughput_gbytes_per_s",     # plan points (modelled)
    )),
}

# params that name a configuration (not a setting of the measurement itself): records of one
# name whose values differ are drawn as separate lines, labelled with the differing values
SERIES_PARAMS = ("path", "source", "via", "processes", "op", "mode", "num_qps", "tx_depth",
                 "post_list", "inline_bytes", "connection", "tool")

PLOT_FORMATS = ("png", "svg", "pdf")


def field(record: Any, path: str) -> Any:
    """`summary.median_gbytes_per_s` -> record.summary['median_gbytes_per_s']; None if absent."""
    head, _, rest = path.partition(".")
    value: Any = getattr(record, head, None)
    for part in rest.split(".") if rest else []:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def metric_value(record: Any, y: str) -> Any:
    """The value of a named metric (first field of METRICS[y] the record has) or of a dotted path."""
    if y in METRICS:
        for path in METRICS[y][1]:
            value = field(record, path)
            if _number(value):
                return value
        return None
    return field(record, y)


def axis_label(path: str) -> str:
    """'summary.median_gbytes_per_s' -> 'median [GB/s]'; 'throughput' -> 'throughput [GB/s]':
    the unit is read from the key's suffix (scenarios.units catalogue)."""
    key = METRICS[path][0] if path in METRICS else path.rsplit(".", 1)[-1]
    return unit_header(key)


def check_metric(y: str) -> None:
    """A dotted path (params.X, summary.X, ...) or a metric name; anything else is refused."""
    heads = ("params.", "summary.", "provenance.", "scenario.", "samples.")
    if y not in METRICS and not y.startswith(heads) and y not in ("name", "kind", "created", "id"):
        raise InputError(f"--y {y!r} is neither a field path nor a metric",
                         f"use {', '.join(METRICS)} or a path like summary.median_gbytes_per_s "
                         "(`rdmarig results show ID` lists a record's fields)")


def points(records: Iterable[Record]) -> Iterator[Any]:
    """Every plotted point: a measured record is one point; a modelled record with one sample per
    model point (plan) gives one point per entry, its copy path and swept values as params."""
    for rec in records:
        report = rec.summary.get("report") if rec.kind == "modelled" else None
        if isinstance(report, dict) and isinstance(report.get("points"), dict):
            yield from _report_points(rec, report)
            continue
        per_point = rec.samples.get(IO_SIZE_KEY) if rec.kind == "modelled" else None
        if not isinstance(per_point, list):
            yield rec
            continue
        n = len(per_point)
        columns = {k: v for k, v in rec.samples.items() if isinstance(v, list) and len(v) == n}
        paths = rec.params.get("point_paths") or []
        swept = {k: v for k, v in (rec.params.get("swept") or {}).items() if isinstance(v, list) and len(v) == n}
        for i in range(n):
            params = {k: v[i] for k, v in swept.items()}
            if len(paths) == n:
                params["path"] = paths[i]
            params[IO_SIZE_KEY] = per_point[i]
            yield SimpleNamespace(kind=rec.kind, name=rec.name, id=rec.id, created=rec.created,
                                  scenario=rec.scenario, provenance=rec.provenance, samples={},
                                  params=params, summary={k: v[i] for k, v in columns.items()},
                                  series_params=tuple(swept))


def _report_points(rec: Record, report: dict[str, Any]) -> Iterator[Any]:
    """The points of a stored plan report (models.report.plan_report): the copy path as `path`,
    the swept values as params, the throughput in GB/s as `summary.throughput_gbytes_per_s`."""
    pts = report["points"]
    swept = [unit_key_of(k) for k in report.get("swept") or []]
    for i, size in enumerate(pts.get(IO_SIZE_KEY) or []):
        params = {k: pts[k][i] for k in swept if k in pts}
        params.update(path=pts["copy_path"][i], **{IO_SIZE_KEY: size})
        X = pts["throughput_bytes_per_s"][i]
        yield SimpleNamespace(kind=rec.kind, name=rec.name, id=rec.id, created=rec.created, scenario=rec.scenario,
                              provenance=rec.provenance, samples={}, params=params,
                              summary={"throughput_gbytes_per_s": None if X is None else to_gbytes_per_s(X)},
                              series_params=tuple(swept))


@dataclass(frozen=True)
class Series:
    """One line: per x, the median of the runs there, their min and max, and how many runs."""
    label: str
    kind: str
    x: tuple[float, ...]
    median: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    n: tuple[int, ...]

    @property
    def repeated(self) -> bool:
        return any(k > 1 for k in self.n)


@dataclass
class SeriesSet:
    series: list[Series]
    x: str
    y: str
    records_used: int = 0
    records_left_out: int = 0
    missing: list[str] = dc_field(default_factory=list)


def build_series(records: Iterable[Record], x: str = DEFAULT_X, y: str = "throughput",
                 group: Sequence[str] | None = None) -> SeriesSet:
    """Points grouped into lines and aggregated per x. `group` None: by name and SERIES_PARAMS."""
    raw: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    configs: dict[tuple, dict[str, Any]] = {}
    kinds: dict[tuple, str] = {}
    used = left_out = 0
    for p in points(records):
        xv, yv = field(p, x), metric_value(p, y)
        if not (_number(xv) and _number(yv)):
            left_out += 1
            continue
        used += 1
        if group is None:
            keys = SERIES_PARAMS + getattr(p, "series_params", ())   # a plan point: its swept axes
            config = {"name": p.name, **{k: p.params[k] for k in keys if k in p.params}}
        else:
            config = {g: field(p, g) for g in group}
        key = tuple(sorted((k, _hashable(v)) for k, v in config.items()))
        configs[key] = config
        kinds[key] = p.kind
        raw[key][float(xv)].append(float(yv))
    labels = _labels(configs, explicit=group is not None)
    out = []
    for key in sorted(raw, key=lambda k: labels[k]):
        xs = sorted(raw[key])
        ys = [np.asarray(raw[key][xv]) for xv in xs]
        out.append(Series(label=labels[key], kind=kinds[key], x=tuple(xs),
                          median=tuple(float(np.median(v)) for v in ys),
                          low=tuple(float(v.min()) for v in ys), high=tuple(float(v.max()) for v in ys),
                          n=tuple(int(v.size) for v in ys)))
    return SeriesSet(out, x, y, used, left_out)


def _labels(configs: dict[tuple, dict[str, Any]], explicit: bool) -> dict[tuple, str]:
    """Explicit groups: the values joined. Default: the name, then `k=v` for every configuration
    param whose value differs between lines of that name."""
    if explicit:
        return {k: " ".join(str(v) for v in c.values()) for k, c in configs.items()}
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in configs.values():
        by_name[c["name"]].append(c)
    labels = {}
    for key, c in configs.items():
        siblings = by_name[c["name"]]
        differing = [k for k in c if k != "name" and len({_hashable(s.get(k)) for s in siblings}) > 1]
        labels[key] = " ".join([str(c["name"])] + [f"{k}={_short(c[k])}" for k in differing])
    return labels


def figure(data: SeriesSet, title: str = "", logx: bool = True) -> Figure:
    """One line per series through the medians (modelled series dashed), a min..max band where
    an x has repeated runs, the run count in the legend. Axis labels carry the units of the keys."""
    if not data.series:
        raise InputError(f"no stored record has both {data.x!r} and {data.y!r}",
                         "pick fields shown by `rdmarig results show ID`, or --y throughput")
    fig = Figure(figsize=(8 + (3.5 if len(data.series) > 6 else 0), 4.5))
    ax = fig.subplots()
    if len(data.series) > 10:
        ax.set_prop_cycle(color=matplotlib.colormaps["tab20"].colors)
    for s in data.series:
        counts = f" (n={min(s.n)})" if min(s.n) == max(s.n) else f" (n={min(s.n)}..{max(s.n)})"
        (line,) = ax.plot(s.x, s.median, marker="o", markersize=4, linestyle="--" if s.kind == "modelled" else "-",
                          label=s.label + (counts if s.repeated else ""))
        if s.repeated:
            ax.fill_between(s.x, s.low, s.high, color=line.get_color(), alpha=0.2, linewidth=0)
    if logx and all(v > 0 for s in data.series for v in s.x):
        log2_axis(ax, sizes=split_unit(data.x.rsplit(".", 1)[-1])[1] == "B")
    ax.set_xlabel(axis_label(data.x))
    ax.set_ylabel(axis_label(data.y))
    ax.set_title(title or f"{axis_label(data.y)} by {axis_label(data.x)}"
                          + (" (median of runs, band: min..max)" if any(s.repeated for s in data.series) else ""))
    ax.grid(True, alpha=0.3)
    if len(data.series) > 6:
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def log2_axis(ax: Any, sizes: bool = True) -> None:
    """A log2 x axis; `sizes`: ticks written as sizes (64KiB, 1MiB)."""
    ax.set_xscale("log", base=2)
    if sizes:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_size(v)))


def render(fig: Figure, fmt: str = "png") -> bytes:
    """The figure encoded as PNG, SVG or PDF bytes (the caller writes them where it likes); the same
    figure gives the same bytes."""
    if fmt not in PLOT_FORMATS:
        raise InputError(f"cannot draw a {fmt!r} file", f"use one of {', '.join(PLOT_FORMATS)}")
    buf = io.BytesIO()
    # no creation date and fixed element ids: the same record draws the same bytes (a report rebuilt
    # from the store is the report it was)
    with matplotlib.rc_context({"svg.hashsalt": "rdmarig"}):
        fig.savefig(buf, format=fmt, dpi=110, metadata={"Date": None} if fmt != "png" else None)
    return buf.getvalue()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)

