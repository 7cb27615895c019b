"""Figures of a stored plan record (`rdmarig plot ...`, the report): drawn from the record alone
(models.report.plan_report as `summary.report`), so a report can be drawn again from the store.

    throughput(rec)               payload GB/s vs I/O size per copy path, the links' and PCIe's
                                  ceilings, the 90 % interval as a band
    bottlenecks(rec, io_size)     utilisation of every resource per copy path at one I/O size
                                  (bars side by side: the utilisations of different resources do not add)
    needs(rec, io_size)           cores and DMA engines needed vs the target rate
    vs_measured(rec, records)     model vs measured (copy.socket, smbd.*), the identity line
    efficiency(rec, records)      Gbit/s per busy core vs I/O size per copy path

Every figure has one row of axes per combination of the swept fields. The data each draws comes
from functions that return it (`facets`, `matches`, ...), so tests compare the drawn lines with the
record's figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from results.matrix import is_mpi_pair
from results.plots import Figure, log2_axis, metric_value
from results.record import Record
from scenarios.errors import InputError
from scenarios.units import GB, IO_SIZE_KEY, format_size, to_gbits_per_s, to_gbytes_per_s, unit_header

KINDS = ("throughput", "bottlenecks", "needs", "vs-measured", "efficiency")
RESOURCES = (("links", "links"), ("pcie", "PCIe"), ("dram", "DRAM"), ("cpu_serving", "serving cores"),
             ("cpu_workers", "worker cores"), ("cpu_all", "all cores"), ("dma", "DMA"), ("pipeline", "pipeline"))
# CPU seconds per GB of a measured record, on the side the model describes (the server, the sender)
MEASURED_CPU = {"copy.socket": ("median_tx_user_cpu_s_per_gb", "median_tx_system_cpu_s_per_gb",
                                "median_tx_softirq_cpu_s_per_gb"),
                "smbd.": ("server_cpu_s_per_gb",)}
_ROW_HEIGHT = 4.0


def report_of(rec: Record) -> dict[str, Any]:
    report = rec.summary.get("report") if rec.kind == "modelled" else None
    if not isinstance(report, dict) or not isinstance(report.get("points"), dict):
        raise InputError(f"record {rec.id} holds no plan report", "pick a record stored by `rdmarig plan`")
    return report


def facets(report: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """Point indices grouped by the values of the swept fields: [(label, indices)], one group
    ('' as its label) when nothing besides the I/O size and the copy path is swept."""
    from scenarios.params import unit_key

    pts = report["points"]
    keys = [unit_key(k) for k in report.get("swept") or []]
    groups: dict[tuple, list[int]] = {}
    for i in range(len(pts["copy_path"])):
        groups.setdefault(tuple(pts[k][i] for k in keys), []).append(i)
    return [(" ".join(f"{k.split('_', 1)[-1]}={v:g}" for k, v in zip(keys, values)), idx)
            for values, idx in groups.items()]


def paths(report: dict[str, Any], idx: Sequence[int]) -> list[str]:
    """The copy paths among `idx`, in the scenario's order."""
    out: list[str] = []
    for i in idx:
        if report["points"]["copy_path"][i] not in out:
            out.append(report["points"]["copy_path"][i])
    return out


def colour(report: dict[str, Any], path: str) -> Any:
    """One colour per copy path in every figure: its place in the scenario's order."""
    import matplotlib

    names = list(dict.fromkeys(report["points"]["copy_path"]))
    palette = matplotlib.colormaps["tab10"].colors
    return palette[names.index(path) % len(palette)] if path in names else "grey"


def _of_path(report: dict[str, Any], idx: Sequence[int], path: str) -> list[int]:
    pts = report["points"]
    return sorted((i for i in idx if pts["copy_path"][i] == path), key=lambda i: pts[IO_SIZE_KEY][i])


def _gb(v: float | None) -> float:
    return math.nan if v is None else to_gbytes_per_s(v)


def _rows(n: int, cols: int = 1, width: float = 8.5) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, _ROW_HEIGHT * n + 0.6))
    return fig, fig.subplots(n, cols, squeeze=False)


def _title(report: dict[str, Any], what: str, label: str) -> str:
    s = report.get("setting") or {}
    where = f"{s.get('scenario', '')} on {s.get('platform', '')}" if s else report.get("title", "")
    return f"{what}: {where}" + (f" ({label})" if label else "")


def _interval_note(report: dict[str, Any]) -> str:
    iv = report.get("intervals")
    return f"; band: 90% interval, {iv['samples']} draws" if iv else ""


# ---- throughput vs I/O size ---------------------------------------------------------------------

def ceilings(report: dict[str, Any], idx: Sequence[int]) -> dict[str, tuple[list[float], list[float]]]:
    """{'links': (sizes, GB/s), 'pcie': (...)}: per I/O size the most any copy path of the group
    could pass through the links and through PCIe (the links' capacity is the same for every path;
    PCIe's differs by the descriptors a path fetches)."""
    pts = report["points"]
    sizes = sorted({pts[IO_SIZE_KEY][i] for i in idx})
    out = {}
    for name in ("links", "pcie"):
        caps = []
        for size in sizes:
            values = [pts[f"capacity_{name}_bytes_per_s"][i] for i in idx if pts[IO_SIZE_KEY][i] == size]
            finite = [v for v in values if v is not None and math.isfinite(v)]
            caps.append(to_gbytes_per_s(max(finite)) if finite else math.nan)
        out[name] = (sizes, caps)
    return out


def throughput(rec: Record) -> Figure:
    report = report_of(rec)
    pts = report["points"]
    iv = (report.get("intervals") or {}).get("points")
    groups = facets(report)
    fig, axes = _rows(len(groups))
    for ax, (label, idx) in zip(axes[:, 0], groups):
        for path in paths(report, idx):
            ii = _of_path(report, idx, path)
            x = [pts[IO_SIZE_KEY][i] for i in ii]
            (line,) = ax.plot(x, [_gb(pts["throughput_bytes_per_s"][i]) for i in ii], marker="o", markersize=4,
                              label=path, color=colour(report, path))
            if iv:
                ax.fill_between(x, [_gb(iv["throughput_p05_bytes_per_s"][i]) for i in ii],
                                [_gb(iv["throughput_p95_bytes_per_s"][i]) for i in ii],
                                color=line.get_color(), alpha=0.15, linewidth=0)
        for (name, shown), style in zip((("links", "links ceiling"), ("pcie", "PCIe ceiling")), ("--", ":")):
            sizes, caps = ceilings(report, idx)[name]
            ax.plot(sizes, caps, color="black", linestyle=style, linewidth=1.2, label=shown)
        log2_axis(ax)
        ax.set_xlabel(unit_header(IO_SIZE_KEY, "I/O size"))
        ax.set_ylabel(unit_header("throughput_gbytes_per_s"))
        ax.set_ylim(bottom=0)
        ax.set_title(_title(report, "payload throughput", label) + _interval_note(report), fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="center right")
    fig.tight_layout()
    return fig


# ---- utilisation of every resource ---------------------------------------------------------------

def pick_size(report: dict[str, Any], io_size: float | None) -> float:
    """The I/O size a one-size figure shows: the one asked for, else the largest of the record."""
    sizes = sorted(set(report["points"][IO_SIZE_KEY]))
    if io_size is None:
        return sizes[-1]
    if io_size not in sizes:
        raise InputError(f"--io-size {format_size(io_size)}: the plan has no point of that size",
                         f"use one of {', '.join(format_size(s) for s in sizes)}")
    return io_size


def utilisation(report: dict[str, Any], idx: Sequence[int], size: float) -> dict[str, dict[str, tuple]]:
    """{resource key: {path: (utilisation %, p05 %, p95 %)}} at one I/O size (0 where the resource
    is not used; the percentiles None without intervals)."""
    pts = report["points"]
    iv = (report.get("intervals") or {}).get("points")
    out: dict[str, dict[str, tuple]] = {}
    for key, _ in RESOURCES:
        out[key] = {}
        for path in paths(report, idx):
            (i,) = [j for j in _of_path(report, idx, path) if pts[IO_SIZE_KEY][j] == size]
            out[key][path] = (_pct(pts[f"util_{key}_ratio"][i]),
                              _pct(iv[f"util_{key}_p05_ratio"][i]) if iv else None,
                              _pct(iv[f"util_{key}_p95_ratio"][i]) if iv else None)
    return out


def _pct(ratio: float | None) -> float:
    return ratio * 100 if ratio is not None and math.isfinite(ratio) else 0.0


def bottlenecks(rec: Record, io_size: float | None = None) -> Figure:
    report = report_of(rec)
    size = pick_size(report, io_size)
    groups = facets(report)
    fig, axes = _rows(len(groups), width=10)
    for ax, (label, idx) in zip(axes[:, 0], groups):
        names = paths(report, idx)
        util = utilisation(report, idx, size)
        width = 0.8 / len(RESOURCES)
        x = np.arange(len(names))
        for k, (key, shown) in enumerate(RESOURCES):
            heights = [util[key][p][0] for p in names]
            err = None
            if all(util[key][p][1] is not None for p in names):
                err = np.array([[max(h - util[key][p][1], 0) for p, h in zip(names, heights)],
                                [max(util[key][p][2] - h, 0) for p, h in zip(names, heights)]])
            ax.bar(x - 0.4 + width * (k + 0.5), heights, width, yerr=err, capsize=2, label=shown,
                   error_kw={"elinewidth": 0.8})
        ax.axhline(100, color="black", linestyle=":", linewidth=1)
        ax.set_xticks(x, names)
        ax.set_ylabel(unit_header("utilisation_pct"))
        ax.set_ylim(0, 110)
        ax.set_title(_title(report, f"utilisation of every resource at {format_size(size)}", label)
                     + ("; whiskers: 90% interval" if report.get("intervals") else ""), fontsize="medium")
        ax.legend(fontsize="x-small", ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return fig


# ---- cores and DMA engines needed vs target -------------------------------------------------------

def needs_of(report: dict[str, Any]) -> dict[str, Any]:
    needs = report.get("needs")
    if not needs:
        raise InputError("the plan record holds no needs curve (its sweep has more points than the curve "
                         "is computed for, or an older rdmarig stored it)", "plot a scenario with fewer points")
    return needs


def needs(rec: Record, io_size: float | None = None) -> Figure:
    report = report_of(rec)
    curve = needs_of(report)
    size = pick_size(report, io_size)
    pts = report["points"]
    rates = [to_gbytes_per_s(r) for r in curve["rates_bytes_per_s"]]
    groups = facets(report)
    fig, axes = _rows(len(groups), 2, width=12)
    for row, (label, idx) in zip(axes, groups):
        for path in paths(report, idx):
            (i,) = [j for j in _of_path(report, idx, path) if pts[IO_SIZE_KEY][j] == size]
            reachable = curve["reachable"][i]
            (line,) = row[0].plot(rates, curve["cores"][i], marker="o", markersize=3, label=path,
                                  color=colour(report, path))
            dma = curve["dma_engines"][i]
            if any(d is None for d in dma):
                row[1].plot([], [], color=line.get_color(), label=f"{path}: no engine reachable")
            elif any(d > 0 for d in dma):
                row[1].plot(rates, dma, marker="o", markersize=3, color=line.get_color(), label=path)
            out = [k for k, ok in enumerate(reachable) if not ok]
            if out:
                row[0].plot([rates[k] for k in out], [curve["cores"][i][k] for k in out], linestyle="none",
                            marker="x", color="black", markersize=6)
        row[0].plot([], [], linestyle="none", marker="x", color="black", label="target not reachable")
        if not row[1].get_lines():
            row[1].text(0.5, 0.5, "no copy path of this plan uses a DMA engine", ha="center", va="center",
                        transform=row[1].transAxes)
        for ax, what in zip(row, ("cores needed (serving + workers)", "DMA engines needed")):
            ax.set_xlabel(unit_header("target_gbytes_per_s"))
            ax.set_ylabel(unit_header("needed_cores" if ax is row[0] else "needed_engines", what))
            ax.set_title(_title(report, f"{what} at {format_size(size)}", label), fontsize="small")
            ax.grid(True, alpha=0.3)
            ax.set_ylim(bottom=0)
            if ax.get_lines():
                ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


# ---- model vs measured -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Match:
    """A measured record and the plan point that models it."""
    record_id: str
    name: str
    path: str
    io_size: float
    measured_gbytes_per_s: float
    model_gbytes_per_s: float
    model_low_gbytes_per_s: float | None
    model_high_gbytes_per_s: float | None
    point: int


# measured record name (prefix) -> (the param naming its copy path, the transport it runs on)
MEASURED_KINDS = {"smbd.": ("copy", "smbdirect"), "copy.socket": ("path", "tcp")}


def measured_path(rec: Any, transport: str | None = None) -> str | None:
    """The copy path a measured record measured (smbd.* name it `copy`, copy.socket `path`), None
    for other records and for records of another transport than `transport`."""
    for prefix, (param, runs_on) in MEASURED_KINDS.items():
        if rec.name.startswith(prefix) and (transport is None or transport == runs_on):
            return rec.params.get(param)
    return None


def matches(report: dict[str, Any], records: Iterable[Record]) -> tuple[list[Match], int]:
    """(every measured record matched to the one plan point of its copy path, I/O size and swept
    values, how many measured records of one of the plan's copy paths found no single point). A
    record matches only a plan of its transport (smbd.*: smbdirect, copy.socket: tcp) and an smbd
    record only a plan of its operation (smbd.read: SMB2 READ)."""
    pts = report["points"]
    iv = (report.get("intervals") or {}).get("points")
    setting = report.get("setting") or {}
    operation = setting.get("operation")
    planned = set(pts["copy_path"])
    found, left_out = [], 0
    for rec in records:
        path = measured_path(rec, setting.get("transport")) if rec.kind == "measured" else None
        value = metric_value(rec, "throughput")
        if path not in planned or not isinstance(value, (int, float)):
            continue
        if rec.name.startswith("smbd.") and operation and rec.name != f"smbd.{operation}":
            continue
        if is_mpi_pair(rec):
            continue          # one of several measured at once: no plan point's setting
        size = rec.params.get(IO_SIZE_KEY)
        candidates = [i for i in range(len(pts["copy_path"]))
                      if pts["copy_path"][i] == path and pts[IO_SIZE_KEY][i] == size and _same_setting(pts, i, rec, report)]
        if len(candidates) != 1:
            left_out += 1
            continue
        i = candidates[0]
        found.append(Match(rec.id, rec.name, path, float(size), float(value), _gb(pts["throughput_bytes_per_s"][i]),
                           _gb(iv["throughput_p05_bytes_per_s"][i]) if iv else None,
                           _gb(iv["throughput_p95_bytes_per_s"][i]) if iv else None, i))
    return found, left_out


def _same_setting(pts: dict[str, list], i: int, rec: Any, report: dict[str, Any]) -> bool:
    """A swept field ('workload.connections') matches a record param of its last name ('connections')
    when the record has one."""
    from scenarios.params import unit_key

    for flat in report.get("swept") or []:
        short = flat.rsplit(".", 1)[-1]
        if short in rec.params and rec.params[short] != pts[unit_key(flat)][i]:
            return False
    return True


def vs_measured(rec: Record, records: Iterable[Record]) -> Figure:
    report = report_of(rec)
    found, _ = matches(report, records)
    if not found:
        raise InputError(f"no stored measured record matches a copy path and I/O size of {rec.name}",
                         "measure some first: `rdmarig measure copy` (copy.socket; scenario smb-tcp-loopback "
                         "models its paths) or `rdmarig measure smbd`")
    fig, axes = _rows(1, width=7)
    ax = axes[0, 0]
    top = max(max(m.measured_gbytes_per_s, m.model_high_gbytes_per_s or m.model_gbytes_per_s) for m in found) * 1.1
    ax.plot([0, top], [0, top], color="black", linestyle="--", linewidth=1, label="model = measured")
    for path in dict.fromkeys(m.path for m in found):
        mine = [m for m in found if m.path == path]
        x = [m.measured_gbytes_per_s for m in mine]
        y = [m.model_gbytes_per_s for m in mine]
        points = ax.scatter(x, y, label=path, zorder=3, color=colour(report, path))
        if all(m.model_low_gbytes_per_s is not None for m in mine):
            ax.errorbar(x, y, yerr=[[max(v - m.model_low_gbytes_per_s, 0) for v, m in zip(y, mine)],
                                    [max(m.model_high_gbytes_per_s - v, 0) for v, m in zip(y, mine)]],
                        fmt="none", ecolor=points.get_facecolor()[0], elinewidth=0.8, capsize=2)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_xlabel(unit_header("measured_gbytes_per_s"))
    ax.set_ylabel(unit_header("model_gbytes_per_s"))
    ax.set_title(_title(report, "model vs measured", "") + (" (bars: 90% interval)" if report.get("intervals") else ""),
                 fontsize="small")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


# ---- Gbit/s per busy core ----------------------------------------------------------------------------

def per_core_gbits_per_s(cpu_s_per_gb: float | None) -> float:
    """Payload Gbit/s one fully busy core moves, from CPU seconds per GB; nan where no CPU is spent."""
    if cpu_s_per_gb is None or not math.isfinite(cpu_s_per_gb) or cpu_s_per_gb <= 0:
        return math.nan
    return to_gbits_per_s(GB / cpu_s_per_gb)


def measured_cpu_s_per_gb(rec: Any) -> float | None:
    keys = next((v for k, v in MEASURED_CPU.items() if rec.name == k or (k.endswith(".") and rec.name.startswith(k))),
                None)
    values = [rec.summary.get(k) for k in keys] if keys else []
    if not values or not all(isinstance(v, (int, float)) for v in values):
        return None
    return float(sum(values))


def efficiency(rec: Record, records: Iterable[Record] = ()) -> Figure:
    report = report_of(rec)
    pts = report["points"]
    records = list(records)
    measured = {m.record_id: m for m in matches(report, records)[0]}
    by_id = {r.id: r for r in records}
    groups = facets(report)
    fig, axes = _rows(len(groups))
    for ax, (label, idx) in zip(axes[:, 0], groups):
        for path in paths(report, idx):
            ii = [i for i in _of_path(report, idx, path) if (pts["throughput_bytes_per_s"][i] or 0) > 0]
            y = [per_core_gbits_per_s(pts["cpu_s_per_gb"][i]) for i in ii]
            if not ii or all(math.isnan(v) for v in y):
                continue
            (line,) = ax.plot([pts[IO_SIZE_KEY][i] for i in ii], y, marker="o", markersize=4, label=path,
                              color=colour(report, path))
            mine = [m for m in measured.values() if m.path == path and m.point in idx]
            xs = [m.io_size for m in mine]
            ys = [per_core_gbits_per_s(measured_cpu_s_per_gb(by_id[m.record_id])) for m in mine]
            if xs and not all(math.isnan(v) for v in ys):
                ax.scatter(xs, ys, marker="s", facecolors="none", edgecolors=line.get_color(),
                           label=f"{path} measured")
        log2_axis(ax)
        ax.set_yscale("log")
        ax.set_xlabel(unit_header(IO_SIZE_KEY, "I/O size"))
        ax.set_ylabel(unit_header("per_busy_core_gbits_per_s"))
        ax.set_title(_title(report, "payload per busy core (server side)", label), fontsize="medium")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def draw(kind: str, rec: Record, measured: Sequence[Record] = (), io_size: float | None = None) -> Figure:
    """One of KINDS from a plan record (and the measured records vs-measured and efficiency compare with)."""
    if kind == "throughput":
        return throughput(rec)
    if kind == "bottlenecks":
        return bottlenecks(rec, io_size)
    if kind == "needs":
        return needs(rec, io_size)
    if kind == "vs-measured":
        return vs_measured(rec, measured)
    if kind == "efficiency":
        return efficiency(rec, measured)
    raise InputError(f"unknown figure {kind!r}", f"draw one of {', '.join(KINDS)}")
