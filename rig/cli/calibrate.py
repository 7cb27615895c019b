"""`rdmarig calibrate host`: fit a place's model parameters from its stored probe records.

Composes three rooms: the records of one place (results store: this host, or the soft-RoCE guest)
-> fit points, fits and measured figures (rig/calibrate.py, models/calibrate.py) -> the measured
section of a platform profile (scenarios/platform_writer.py, read back by scenarios/profile.py).
The profile names a base whose datasheet figures stand where nothing was measured; every measured
figure cites its records. Then the model predicts each measured path (scenario smb-tcp-loopback,
and verbs-this-host where verbs records exist) on the profile: predicted vs measured, with the error.
"""

from __future__ import annotations

import datetime as _dt
import os
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


def _check_out(out: Path) -> None:
    if out.suffix != ".toml":
        raise InputError(f"--out {out}: a platform profile is a .toml file", "name it like this-host.toml")
    if out.is_dir():
        raise InputError(f"--out {out}: is a directory", "name a .toml file, like this-host.toml")


def _target(out: Path, name: Optional[str], base: Optional[str], place, records: list) -> Target:
    builtin = {p.resolve(): n for n, p in files.builtin_platforms().items()}
    default_name = "this-guest" if place.is_guest else "this-host"
    if out.exists():
        data = _read_profile(out)
        text = out.read_text()
        if out.resolve() in builtin and "base" not in data and pw.MARKER not in text:
            raise InputError(f"--out {out}: is the datasheet profile {builtin[out.resolve()]}; calibration does not "
                             "overwrite datasheet figures", f"write this host's profile beside it: --out "
                             f"{out.with_name(default_name + '.toml')} --base {builtin[out.resolve()]}")
        if text.startswith(OLD_HEADER) and pw.MARKER not in text and "base" not in data:
            return _new(out, name or str(data.get("name") or default_name), base,
                        "replaced: it was a whole profile written by an older calibrate host", place, records)
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
    return _new(out, name or default_name, base, "created", place, records)


def _new(out: Path, name: str, base: Optional[str], action: str, place, records: list) -> Target:
    from rig import calibrate as rc

    if base is None:
        datasheets = {n: load_platform(p) for n, p in files.builtin_platforms().items() if p.resolve() != out.resolve()}
        verbs = any(r.name.startswith("verbs.") for r in records)
        base, why = rc.choose_base(datasheets, place.cpu, software_rdma=place.is_guest and verbs)
    else:
        why = "chosen with --base"
    try:
        base_platform = load_platform(base)
    except InputError as exc:
        raise InputError(f"--base {base}: {exc.cause}", exc.fix) from None
    facts = rc.place_profile(base_platform, place, records)
    header = [f"Written by `rdmarig calibrate host` on {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}",
              f"from the records of {place.label}; rdmarig {git_sha() or 'unknown'}.",
              f"Base {base}: {why}.",
              "Below: what the place says of itself (its sources say how it was read); the measured section",
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
            "cpu.tcp_segment_time", "cpu.tcp_receive_time", "cpu.tcp_ack_time", "cpu.copy_rate_cross_core",
            "cpu.copy_page_time", "cpu.page_fault_time", "cpu.page_zero_rate", "cpu.unmap_page_time",
            "cpu.pin_page_time", "cpu.pin_folio_time", "cpu.tcp_checksum_rate", "memory.dram_bandwidth",
            "nic.soft_crc_rate", "nic.soft_packet_time", "nic.soft_wr_time", "cpu.rdma_wr_time",
            "cpu.mr_register_time", "cpu.smb_request_time", "cpu.smb_client_time", "cpu.crc32_rate",
            "cpu.async_handoff_time", "nic.soft_inline_time")
PLACES_HELP = ("Whose records to fit: host (this machine), guest (the soft-RoCE guest's: `rdmarig guest run -- "
               "rdmarig measure ...`), or a place as the error listing places prints it. One calibration uses one "
               "place's records only.")


@app.command("host")
def host(
    out: Optional[Path] = typer.Option(None, "--out",
                                       help="Platform profile whose measured section to write (default "
                                            "scenarios/platforms/this-host.toml, or this-guest.toml for --place guest: "
                                            "a built-in platform, `rdmarig plan ... --platform this-host`). Created, "
                                            "naming a base, when it does not exist."),
    name: Optional[str] = typer.Option(None, "--name", help="Platform name of a new profile (default this-host, "
                                                            "this-guest for the guest)."),
    base: Optional[str] = typer.Option(None, "--base", help="Profile a new profile builds on (default: the built-in "
                                                            "closest to the place: its CPU, or its software RDMA)."),
    place: str = typer.Option("host", "--place", help=PLACES_HELP),
    scenario: str = typer.Option("smb-tcp-loopback", "--scenario",
                                 help="Scenario whose copy paths are compared with the socket measurements."),
    store_path: Optional[Path] = StoreOption,
) -> None:
    """Fit a place's copy, kernel and soft-RoCE costs from stored probe records into a profile's measured section."""
    if out is not None:
        _check_out(out)
    scenario_file(scenario)
    if Path(store_path or default_store_path()).is_dir():
        raise InputError(f"--store {store_path or default_store_path()}: is a directory",
                         "pass the SQLite file of the store")
    from rig import calibrate as rc
    from rig.executed_time import all_in_executed_time
    with open_store(store_path, write=False) as store:
        probes = [r for name_ in rc.PROBES for r in store.query(kind="measured", name=name_)]
        where = store.path
    probes, _ = all_in_executed_time(probes)
    if not probes:
        raise InputError(f"{where} has no probe records (copy.memcpy, copy.socket, verbs ...)",
                         "run `rdmarig measure copy` first (same --store)")
    pl, records = rc.pick_place(probes, place)
    if out is None:
        out = files.PLATFORM_DIR / ("this-guest.toml" if pl.is_guest else "this-host.toml")
        _check_out(out)
    target = _target(out, name, base, pl, records)
    fit = rc.fit_place(pl, records)
    before = profile.platform_from_data(files.parse_toml(target.head.encode(), target.path, "platform"), target.path)
    figures = rc.measured_figures(fit, before)
    notes = [rc.place_summary(pl, records)]
    executed = sum(1 for r in records if r.provenance.get("cpu_time") == "executed")
    if executed:
        notes.append(f"{executed} of {len(records)} records fitted in executed time: their CPU figures times the "
                     "share of their guest busy time the host executed (rig/executed_time.py)")
    verbs = rc.of_kind(records, "verbs.write.bw", "verbs.read.bw", "verbs.send.bw")
    if verbs:
        fit, figures, note = _soft_rdma(fit, figures, before, target, verbs)
        notes.append(note)
    written, write_notes = _write(target, figures)
    fg = rc.foreign_load(records)
    notes += [f"other tenants' load while they ran: median {fg[0]:.2f}, max {fg[1]:.2f} CPU-s per second "
              "(the fits use CPU time, which that load inflates little)",
              f"memcpy records: {len(rc.of_kind(records, 'copy.memcpy'))} used, "
              f"{rc.noise_note(rc.of_kind(records, 'copy.memcpy'))}",
              f"socket records: {len(rc.of_kind(records, 'copy.socket'))} used", *write_notes]
    _print(target, fit, figures, written, notes, scenario, rc.of_kind(records, "copy.socket"), verbs)


def _soft_rdma(fit, figures: dict, before, target: Target, verbs: list):
    """The software NIC's figures from verbs records, with the copy figures just fitted (the model's
    equations, scenario verbs-this-host on the profile)."""
    import dataclasses

    from rig import calibrate as rc
    from scenarios import platform as plat

    if before.nic.rdma != "software":
        return fit, figures, (f"{len(verbs)} verbs records not used: the profile's NIC runs RDMA in hardware "
                              f"({before.nic.model}); calibrate the guest's records into a profile whose base is "
                              "soft-RoCE (--place guest)")
    s = load_scenario("verbs-this-host", platform=before)
    overrides = {plat.flat_name(k): m.value for k, m in figures.items() if plat.flat_name(k) in _flat(s)}
    soft = rc.fit_soft_rdma(verbs, s, overrides)
    if soft is None:
        return fit, figures, (f"{len(verbs)} verbs records: too few sizes between two devices (--peer-device) to fit "
                              "the software NIC")
    fit = dataclasses.replace(fit, soft=soft)
    return fit, rc.measured_figures(fit, before), (
        f"software RDMA: {soft.fit.n_points} verbs runs between two devices fitted (rms relative error "
        f"{soft.fit.rms_relative_error:.0%}, max {soft.fit.max_relative_error:.0%})")


def _flat(s) -> dict:
    from scenarios.schema import flat_params
    return flat_params(s)


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


def _print(target: Target, fit, figures: dict, written: dict, notes: list[str], scenario: str, sock: list,
           verbs: list) -> None:
    """The fitted figures (and whether each was written), the per-path costs, the model against the records."""
    rows = []
    for key in FIT_KEYS:
        m = figures.get(key)
        if m is None:
            continue
        is_copy = key.split(".")[1] in fit.copy.params
        rows.append({"parameter": key, "value": m.text,
                     "interval": f"{m.low_text} .. {m.high_text}" + (" (range)" if "range" in m.interval else "")
                     if m.low_text else "-",
                     "points": fit.copy.n_points if is_copy else None,
                     "rms": fit.copy.rms_relative_error if is_copy else None,
                     "max": fit.copy.max_relative_error if is_copy else None,
                     "records": len(m.records), "written": "yes" if written.get(key) is m else "no"})
    typer.echo(render(Table(f"fitted parameters -> {target.path}", FIT_COLUMNS, rows, notes), "md"))
    if fit.paths:
        prow = []
        for path, f in fit.paths.items():
            b, c = f.params["per_byte_seconds"], f.params["per_call_seconds"]
            prow.append({"path": path, "per_byte_s_per_gb": b.value * GB, "per_byte_ci": _ci(b, GB),
                         "per_call_us": c.value / US, "per_call_ci": _ci(c, 1 / US), "points": f.n_points,
                         "rms": f.rms_relative_error})
        typer.echo(render(Table("sender CPU per path = per byte + per call x calls (loopback, tmpfs source)",
                                PATH_COLUMNS, prow), "md"))
    plat = load_platform(target.path)
    if sock:
        typer.echo(render(compare_table(scenario, target.path, plat, sock), "md"), nl=False)
    if verbs and plat.nic.rdma == "software":
        typer.echo(render(verbs_table(target.path, plat, verbs), "md"), nl=False)


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
                   Column.of("measured_sender_cpu_s_per_gb", "measured sender", "{:.3f}"),
                   Column.of("predicted_sender_cpu_s_per_gb", "model", "{:.3f}"),
                   Column.of("measured_receiver_cpu_s_per_gb", "measured receiver", "{:.3f}"),
                   Column.of("predicted_receiver_cpu_s_per_gb", "model", "{:.3f}"),
                   Column.of("measured_cpu_s_per_gb", "measured both", "{:.3f}"),
                   Column.of("predicted_cpu_s_per_gb", "model", "{:.3f}"),
                   Column.of("cpu_error_pct", "error", "{:+.0f}"),
                   Column("binding", "model's binding resource"),
                   Column.of("foreign_cpu_per_s", "foreign load", "{:.2f}"), Column("records", "records", "{:d}")]
VERBS_COLUMNS = [Column("op", "op"), Column.of("io_size_bytes", "message", "{:.0f}"),
                 Column.of("measured_gbytes_per_s", "measured", "{:.4f}"),
                 Column.of("predicted_gbytes_per_s", "model", "{:.4f}"),
                 Column.of("gbps_error_pct", "error", "{:+.0f}"),
                 Column.of("measured_kernel_cpu_s_per_gb", "measured kernel CPU", "{:.2f}"),
                 Column.of("predicted_kernel_cpu_s_per_gb", "model", "{:.2f}"),
                 Column.of("cpu_error_pct", "error", "{:+.0f}"), Column("record", "record")]


def _ci(est, scale: float) -> str:
    import numpy as np
    if not (np.isfinite(est.low) and np.isfinite(est.high)):
        return "-"
    return f"{est.low * scale:.3g} .. {est.high * scale:.3g}"


def compare_table(scenario: str, platform_file: Path, plat, records: list):
    """The model on the calibrated profile against every measured (path, chunk) of the scenario: both
    ends (the loopback transport puts the receiver on this host too), each end, and throughput."""
    from models import report
    from models.sweep import evaluate_grid
    from rig.calibrate import foreign_load, measured_side

    s = load_scenario(scenario, platform=platform_file)
    measured = measured_side(records)
    if not measured:
        return Table("model vs measured", COMPARE_COLUMNS, [], ["no loopback tmpfs socket records"])
    names = [p.name for p in s.copy_paths]
    rows, errors_gbps, errors_cpu = [], [], []
    for key, m in measured.items():
        if key[0] not in names:
            continue
        # each point at the load other tenants put on the host while it ran (its record says)
        foreign = m.foreign_cpu_per_s if m.foreign_cpu_per_s == m.foreign_cpu_per_s else 0.0
        ev = evaluate_grid(s, {"workload.io_size": [key[1]], "workload.foreign_load": [foreign]},
                           paths=[names.index(key[0])])
        (row,) = report.rows(ev)
        pg, ps, pr = row["throughput_bytes_per_s"] / GB, row["cpu_s_per_gb"], row["client_cpu_s_per_gb"]
        mc = m.cpu_s_per_gb + m.receiver_cpu_s_per_gb
        eg, ec = report.error_pct(pg, m.gbytes_per_s), report.error_pct(ps + pr, mc)
        errors_gbps.append(eg)
        errors_cpu.append(ec)
        rows.append({"path": key[0], "chunk_bytes": key[1], "measured_gbytes_per_s": m.gbytes_per_s,
                     "predicted_gbytes_per_s": pg, "gbps_error_pct": eg,
                     "measured_sender_cpu_s_per_gb": m.cpu_s_per_gb, "predicted_sender_cpu_s_per_gb": ps,
                     "measured_receiver_cpu_s_per_gb": m.receiver_cpu_s_per_gb, "predicted_receiver_cpu_s_per_gb": pr,
                     "measured_cpu_s_per_gb": mc, "predicted_cpu_s_per_gb": ps + pr, "cpu_error_pct": ec,
                     "binding": row["binding"], "foreign_cpu_per_s": m.foreign_cpu_per_s, "records": m.records})
    measured_note = (f"{len(plat.measured)} figures of {plat.name} are measured ({', '.join(sorted(plat.measured))}); "
                     f"the rest come from {plat.base or 'the profile itself'}")
    fg = foreign_load(records)
    notes = [f"throughput: {report.error_summary(errors_gbps)}; CPU per GB, both ends: {report.error_summary(errors_cpu)}"
             if rows else "no measured path matches a copy path of the scenario",
             f"model: scenario {s.name} on the calibrated profile (loopback: the sender's core also runs the receive "
             "softirq its sends trigger; the receiver's core its recv copy), each point at the foreign load its "
             "record measured (workload.foreign_load: other tenants' CPU leaves the cores the rest of their time); "
             "measured: median over the stored repetitions, sender = tx user + system + softirq, receiver = rx",
             measured_note,
             f"other tenants took median {fg[0]:.2f}, max {fg[1]:.2f} CPU-s/s of this host's cores while these ran"]
    return Table(f"model vs measured: {s.name} on {platform_file}", COMPARE_COLUMNS, rows, notes)


def verbs_table(platform_file: Path, plat, records: list):
    """The model (verbs-this-host on the calibrated profile) against every verbs run between two devices."""
    from models import report
    from models.sweep import evaluate_grid
    from rig.calibrate import VERBS_OPERATION, verbs_points

    s = load_scenario("verbs-this-host", platform=platform_file)
    by_id = {r.id: r for r in records}
    rows, eg_all, ec_all = [], [], []
    for op, size, kernel, _user, rid in verbs_points(records):
        ev = evaluate_grid(s, {"workload.io_size": [size], "workload.operation_code": [VERBS_OPERATION[op]]})
        r = ev.result
        user = ev.table.rdma_wrs_per_io[0] * plat.cpu.rdma_wr_time / size
        pk = (r.both_ends_seconds_per_byte[0] - user) * GB
        pg = r.throughput[0] / GB
        mg = by_id[rid].summary.get("bw_average_gbytes_per_s") or float("nan")
        eg, ec = report.error_pct(pg, mg), report.error_pct(pk, kernel * GB)
        eg_all.append(eg)
        ec_all.append(ec)
        rows.append({"op": op, "io_size_bytes": size, "measured_gbytes_per_s": mg, "predicted_gbytes_per_s": pg,
                     "gbps_error_pct": eg, "measured_kernel_cpu_s_per_gb": kernel * GB,
                     "predicted_kernel_cpu_s_per_gb": pk, "cpu_error_pct": ec, "record": rid[:8]})
    notes = [f"throughput: {report.error_summary(eg_all)}; kernel CPU per GB (both ends): {report.error_summary(ec_all)}",
             "model: verbs-this-host (one QP, both ends on this host: every packet's receive runs on the posting "
             "core) on the calibrated profile; the kernel CPU is what the software NIC's terms were fitted to"]
    return Table(f"model vs measured: verbs-this-host on {platform_file}", VERBS_COLUMNS, rows, notes)
