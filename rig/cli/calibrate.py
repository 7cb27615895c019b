"""`rdmarig calibrate host`: fit this host's model parameters from stored copy-probe records.

Composes three rooms: the records of this host (results store) -> fit points, fits and measured
figures (rig/calibrate.py, models/calibrate.py) -> the measured section of a platform profile
(scenarios/platform_writer.py, read back by scenarios/profile.py). The profile names a base whose
datasheet figures stand where nothing was measured; every measured figure cites its records.
Then the model predicts each measured path (scenario smb-tcp-loopback on the profile): predicted
vs measured, with the error.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform as _platform
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from results.provenance import git_sha
from results.store import default_store_path
from results.tables import Column, Table, render
from rig.cli._common import StoreOption, open_store
from scenarios import files
from scenarios import platform_writer as pw
from scenarios import profile
from scenarios.errors import InputError
from scenarios.schema import load_platform, load_scenario, scenario_file
from scenarios.units import GB, US

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
OLD_HEADER = "# Written by `rdmarig calibrate host`"   # a whole profile, as calibrate wrote it before


@dataclass
class Target:
    """The profile calibrate writes: the text it keeps (all but the measured section) and what it did."""
    path: Path
    head: str                   # the profile without its measured section
    action: str                 # what happens to the file, for the notes
    previous: dict              # the figures of its measured section before this run


def _target(out: Path, name: Optional[str], base: Optional[str]) -> Target:
    if out.suffix != ".toml":
        raise InputError(f"--out {out}: a platform profile is a .toml file", "name it like this-host.toml")
    if out.is_dir():
        raise InputError(f"--out {out}: is a directory", "name a .toml file, like this-host.toml")
    builtin = {p.resolve(): n for n, p in files.builtin_platforms().items()}
    if out.exists():
        data = _read_profile(out)
        text = out.read_text()
        if out.resolve() in builtin and "base" not in data and pw.MARKER not in text:
            raise InputError(f"--out {out}: is the datasheet profile {builtin[out.resolve()]}; calibration does not "
                             "overwrite datasheet figures", f"write this host's profile beside it: --out "
                             f"{out.with_name('this-host.toml')} --base {builtin[out.resolve()]}")
        if text.startswith(OLD_HEADER) and pw.MARKER not in text and "base" not in data:
            return _new(out, name or str(data.get("name") or "this-host"), base,
                        "replaced: it was a whole profile written by an older calibrate host")
        if "measured" in data and pw.MARKER not in text:
            raise InputError(f"--out {out}: its [measured] section was not written by calibrate host (no marker line)",
                             f"move it below a line `{pw.MARKER}`, or remove it")
        for option, given, has in (("--name", name, data.get("name")), ("--base", base, data.get("base"))):
            if given is not None and given != has:
                raise InputError(f"{option} {given}: the profile {out} has {option[2:]} {has!r}; calibrate writes "
                                 "only its measured section", f"edit that line of {out}, or pass another --out")
        current = profile.platform_from_data(data, out)
        return Target(out, pw.without_measured(text),
                      f"its measured section updated (base {current.base or 'none: its own figures'})",
                      profile.own_measured(data, out))
    return _new(out, name or "this-host", base, "created")


def _new(out: Path, name: str, base: Optional[str], action: str) -> Target:
    from rig import calibrate as rc

    if base is None:
        datasheets = {n: load_platform(p) for n, p in files.builtin_platforms().items() if p.resolve() != out.resolve()}
        base, why = rc.choose_base(datasheets)
    else:
        why = "chosen with --base"
    try:
        base_platform = load_platform(base)
    except InputError as exc:
        raise InputError(f"--base {base}: {exc.cause}", exc.fix) from None
    facts = rc.host_profile(base_platform)
    header = [f"Written by `rdmarig calibrate host` on {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}",
              f"host {_platform.node()}, kernel {_platform.release()}, rdmarig {git_sha() or 'unknown'}.",
              f"Base {base}: {why}.",
              "Below: what this host says of itself (its sources say how it was read); the measured section",
              "at the end holds the figures fitted from stored records, each citing their ids."]
    ref = base if base in files.builtin_platforms() else str(Path(base).resolve())
    head = pw.new_profile(name, facts["description"], ref, header, facts["own"], facts["no_dma_because"])
    note = f"{action} with base {base} ({why})"
    if facts["dma_engines"]:
        note += f"; this host has DMA engines ({', '.join(facts['dma_engines'])}): the base's [[dma]] stand for them"
    return Target(out, head, note, {})


def _read_profile(out: Path) -> dict:
    try:
        return files.read_toml(out, "platform")
    except InputError as exc:
        raise InputError(f"--out {exc.cause}" if exc.cause.startswith(str(out)) else f"--out {out}: {exc.cause}",
                         exc.fix) from None


FIT_KEYS = ("cpu.copy_rate_cache", "cpu.copy_rate_dram", "cpu.cache_per_core", "cpu.syscall_time",
            "cpu.tcp_segment_time", "memory.dram_bandwidth")


@app.command("host")
def host(
    out: Path = typer.Option(files.PLATFORM_DIR / "this-host.toml", "--out",
                             help="Platform profile whose measured section to write (in scenarios/platforms/ it is a "
                                  "built-in platform: `rdmarig plan ... --platform this-host`). Created, naming a base, "
                                  "when it does not exist."),
    name: Optional[str] = typer.Option(None, "--name", help="Platform name of a new profile (default this-host)."),
    base: Optional[str] = typer.Option(None, "--base", help="Profile a new profile builds on (default: the built-in "
                                                            "whose CPU is closest to this host's)."),
    scenario: str = typer.Option("smb-tcp-loopback", "--scenario",
                                 help="Scenario whose copy paths are compared with the measurements."),
    store_path: Optional[Path] = StoreOption,
) -> None:
    """Fit this host's copy and kernel costs from stored copy-probe records into a profile's measured section."""
    target = _target(out, name, base)
    scenario_file(scenario)
    if Path(store_path or default_store_path()).is_dir():
        raise InputError(f"--store {store_path or default_store_path()}: is a directory",
                         "pass the SQLite file of the store")
    from rig import calibrate as rc
    with open_store(store_path, write=False) as store:
        mem = rc.this_host(store.query(kind="measured", name="copy.memcpy"))
        sock = rc.this_host(store.query(kind="measured", name="copy.socket"))
        where = store.path
    if not mem or not sock:
        raise InputError(f"{where} has no copy.memcpy and copy.socket records of this host "
                         f"({len(mem)} memcpy, {len(sock)} socket)", "run `rdmarig measure copy` first (same --store)")
    fit = rc.fit_host(mem, sock)
    figures = rc.measured_figures(fit)
    written, notes = _write(target, figures)
    notes = [f"memcpy records: {len(mem)} used, {rc.noise_note(mem)}",
             f"socket records: {len(sock)} used, {rc.noise_note(sock)}", *notes]
    _print(target, fit, figures, written, notes, scenario, sock)


def _write(target: Target, figures: dict) -> tuple[dict, list[str]]:
    """Write the measured section; (the figures written, notes on what was kept and refused)."""
    before = profile.platform_from_data(files.parse_toml(target.head.encode(), target.path, "platform"), target.path)
    kept = {k: m for k, m in target.previous.items() if k not in figures}
    problems = profile.figure_problems({**kept, **figures}, before)
    written = {k: m for k, m in {**kept, **figures}.items() if k not in problems}
    text = pw.with_measured(target.head, written)
    profile.platform_from_data(files.parse_toml(text.encode(), target.path, "platform"), target.path)  # loads as any other
    tmp = target.path.with_name(f".{target.path.name}.{os.getpid()}.tmp")
    try:
        target.path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, target.path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"--out {target.path}: cannot write ({exc.strerror})", "pass a writable path") from None
    notes = [f"profile {target.path}: {target.action}"]
    for key, why in problems.items():
        notes.append(f"{key}: not written, {why}; the profile keeps {before.sources().get(key, 'its figure')!r}")
    if kept:
        notes.append(f"kept from the previous calibration (not refitted now): {', '.join(sorted(set(kept) & set(written)))}")
    return written, notes


def _print(target: Target, fit, figures: dict, written: dict, notes: list[str], scenario: str, sock: list) -> None:
    """The fitted figures (and whether each was written), the per-path costs, the model against the records."""
    rows = []
    for key in FIT_KEYS:
        m = figures.get(key)
        if m is None:
            continue
        is_copy = key.split(".")[1] in fit.copy.params
        rows.append({"parameter": key, "value": m.text,
                     "interval": f"{m.low_text} .. {m.high_text}" + (" (range)" if key.startswith("memory") else "")
                     if m.low_text else "-",
                     "points": fit.copy.n_points if is_copy else None,
                     "rms": fit.copy.rms_relative_error if is_copy else None,
                     "max": fit.copy.max_relative_error if is_copy else None,
                     "records": len(m.records), "written": "yes" if written.get(key) is m else "no"})
    typer.echo(render(Table(f"fitted host parameters -> {target.path}", FIT_COLUMNS, rows, notes), "md"))
    prow = []
    for path, f in fit.paths.items():
        b, c = f.params["per_byte_seconds"], f.params["per_call_seconds"]
        prow.append({"path": path, "per_byte_s_per_gb": b.value * GB, "per_byte_ci": _ci(b, GB),
                     "per_call_us": c.value / US, "per_call_ci": _ci(c, 1 / US), "points": f.n_points,
                     "rms": f.rms_relative_error})
    typer.echo(render(Table("sender CPU per path = per byte + per call x calls (loopback, tmpfs source)",
                            PATH_COLUMNS, prow), "md"))
    plat = load_platform(target.path)
    typer.echo(render(compare_table(scenario, target.path, plat, sock), "md"), nl=False)


FIT_COLUMNS = [Column("parameter", "parameter"), Column("value", "value"), Column("interval", "95% interval"),
               Column("points", "points", "{:d}"), Column("rms", "rms rel. error", "{:.1%}"),
               Column("max", "max rel. error", "{:.1%}"), Column("records", "records", "{:d}"),
               Column("written", "written")]
PATH_COLUMNS = [Column("path", "path"), Column.of("per_byte_s_per_gb", "per byte", "{:.3f}"),
                Column("per_byte_ci", "95% interval [CPU-s/GB]"),
                Column.of("per_call_us", "per call", "{:.2f}"), Column("per_call_ci", "95% interval [µs]"),
                Column("points", "points", "{:d}"), Column("rms", "rms rel. error", "{:.1%}")]
COMPARE_COLUMNS = [Column("path", "path"), Column.of("chunk_bytes", "chunk", "{:d}"),
                   Column.of("measured_gbytes_per_s", "measured", "{:.2f}"),
                   Column.of("predicted_gbytes_per_s", "model", "{:.2f}"),
                   Column.of("gbps_error_pct", "error", "{:+.0f}"),
                   Column.of("measured_cpu_s_per_gb", "measured sender", "{:.3f}"),
                   Column.of("predicted_cpu_s_per_gb", "model", "{:.3f}"),
                   Column.of("cpu_error_pct", "error", "{:+.0f}"),
                   Column("binding", "model's binding resource"),
                   Column.of("foreign_cpu_per_s", "foreign load", "{:.2f}"), Column("records", "records", "{:d}")]


def _ci(est, scale: float) -> str:
    import numpy as np
    if not (np.isfinite(est.low) and np.isfinite(est.high)):
        return "-"
    return f"{est.low * scale:.3g} .. {est.high * scale:.3g}"


def compare_table(scenario: str, platform_file: Path, plat, records: list):
    """The model on the calibrated profile against every measured (path, chunk) of the scenario."""
    import numpy as np

    from models import report
    from models.sweep import evaluate_with_overrides
    from rig.calibrate import measured_side

    s = load_scenario(scenario, platform=platform_file)
    measured = measured_side(records)
    chunks = sorted({c for _, c in measured})
    if not chunks:
        return Table("model vs measured", COMPARE_COLUMNS, [], ["no loopback tmpfs socket records"])
    # the probes carry no SMB request: compare without the per-request SMB cost
    ev = evaluate_with_overrides(s, {"cpu.smb_request_time": 0.0}, grid={"workload.io_size": chunks})
    rows, errors_gbps, errors_cpu = [], [], []
    for row in report.rows(ev):
        key = (row["copy_path"], int(row["io_size_bytes"]))
        m = measured.get(key)
        if m is None:
            continue
        pg, pc = row["throughput_bytes_per_s"] / GB, row["cpu_s_per_gb"]
        eg, ec = (pg / m.gbytes_per_s - 1) * 100, (pc / m.cpu_s_per_gb - 1) * 100
        errors_gbps.append(abs(eg))
        errors_cpu.append(abs(ec))
        rows.append({"path": key[0], "chunk_bytes": key[1], "measured_gbytes_per_s": m.gbytes_per_s,
                     "predicted_gbytes_per_s": pg, "gbps_error_pct": eg, "measured_cpu_s_per_gb": m.cpu_s_per_gb,
                     "predicted_cpu_s_per_gb": pc, "cpu_error_pct": ec, "binding": row["binding"],
                     "foreign_cpu_per_s": m.foreign_cpu_per_s, "records": m.records})
    measured_note = (f"{len(plat.measured)} figures of {plat.name} are measured ({', '.join(sorted(plat.measured))}); "
                     f"the rest come from {plat.base or 'the profile itself'}")
    notes = [f"throughput: median |error| {np.median(errors_gbps):.0f}%, max {np.max(errors_gbps):.0f}%; "
             f"sender CPU per GB: median |error| {np.median(errors_cpu):.0f}%, max {np.max(errors_cpu):.0f}%"
             if rows else "no measured path matches a copy path of the scenario",
             "model: scenario " + s.name + " on the calibrated profile, cpu.smb_request_time = 0 (the probes send "
             "raw file data); measured: median over the stored repetitions",
             measured_note,
             "the model's CPU covers the sender only; on loopback the receiver's copy runs on the other core",
             "measured throughput assumes nothing else runs: where other tenants took CPU (foreign load) it is "
             "lower than the model's, while CPU per GB is not affected"]
    return Table(f"model vs measured: {s.name} on {platform_file}", COMPARE_COLUMNS, rows, notes)
