"""`rdmarig calibrate host`: fit this host's model parameters from stored copy-probe records.

Reads `copy.memcpy` and `copy.socket` records of this host from the store, fits (models.calibrate)
the per-core copy law and the per-byte / per-call sender costs of every path, writes a platform
profile whose every figure cites the record ids it rests on, prints the fit quality, and then
lets the model predict each measured path (scenario smb-tcp-loopback on the new profile):
predicted vs measured, with the error.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform as _platform
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from models import calibrate as cal
from models import report
from models.sweep import evaluate_with_overrides
from results.provenance import cpu_model, git_sha, mem_total_bytes
from results.record import Record
from results.tables import Column, Table, render
from results.store import default_store_path
from rig.cli._common import StoreOption, open_store
from scenarios import schema
from scenarios.errors import InputError

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

GSO_BYTES = 65536                 # lo's GSO unit: one TCP send unit per 64 KiB
NONTEMPORAL_BELOW_BYTES = 192 << 20  # glibc memcpy switches to non-temporal stores above ~192 MiB
PER_CALL_MIN_BYTES = 64 << 10     # below this the probe's Python call cost is comparable to the copy


# --------------------------------------------------------------------------- records -> points

def _this_host(records: list[Record]) -> list[Record]:
    host, cpu = _platform.node(), cpu_model()
    return [r for r in records if r.provenance.get("host") == host and r.provenance.get("cpu_model") == cpu]


def _noise_note(records: list[Record]) -> str:
    """The fits use CPU time (memcpy per CPU-second, socket CPU-s per GB), which other tenants do
    not inflate much, so noisy records stay in; the note says how many there were."""
    noisy = sum(1 for r in records if r.summary.get("noise_warning"))
    return f"{noisy} of them ran on a busy host (noise warning)" if noisy else "none ran on a busy host"


def memcpy_points(records: list[Record]) -> list[cal.Point]:
    pts = []
    for r in records:
        size = r.params.get("io_size_bytes", 0)
        if r.params.get("processes") != 1 or not PER_CALL_MIN_BYTES <= size < NONTEMPORAL_BELOW_BYTES:
            continue
        # per second of CPU the copier got: other tenants on the core do not lower it
        series = r.samples.get("call_corrected_per_cpu_second_gbytes_per_s") or \
            r.samples.get("call_corrected_per_core_gbytes_per_s", [])
        for v in series:
            if v:
                pts.append(cal.Point(float(size), v * 1e9, r.id))
    return pts


def dram_estimate(records: list[Record]) -> cal.Estimate | None:
    """Sustained DRAM traffic with every core copying: copy rate x 3 (read, write, write-allocate:
    the model's accounting for copies without non-temporal stores), DRAM-sized buffers."""
    ncpu = os.cpu_count() or 1
    best = [r for r in records if r.params.get("processes") == ncpu
            and 64 << 20 <= r.params.get("io_size_bytes", 0) < NONTEMPORAL_BELOW_BYTES]
    if not best:
        return None
    values = np.array([v for r in best for v in r.samples.get("total_gbytes_per_s", []) if v]) * 1e9 * 3
    if values.size == 0:
        return None
    return cal.Estimate(float(np.max(values)), float(np.min(values)), float(np.max(values)), "bytes/s",
                        tuple(sorted(r.id for r in best)))


def socket_points(records: list[Record]) -> dict[str, list[cal.Point]]:
    """Per path: (calls per byte, sender CPU seconds per byte) for every repetition."""
    out: dict[str, list[cal.Point]] = defaultdict(list)
    for r in records:
        if r.params.get("via") != "loopback" or r.params.get("source") != "tmpfs":
            continue
        s = r.samples
        calls = s.get("calls_sent_per_gb")
        if not calls:
            continue
        for i, c in enumerate(calls):
            parts = [s.get(f"tx_{k}_cpu_s_per_gb", [None] * len(calls))[i] for k in ("user", "system", "softirq")]
            if c and all(p is not None for p in parts):
                out[r.params["path"]].append(cal.Point(c / 1e9, sum(parts) / 1e9, r.id))
    return dict(out)


# --------------------------------------------------------------------------- the profile

def _cite(est: cal.Estimate, what: str, quality: str = "", interval_kind: str = "95% interval") -> str:
    interval = ""
    if np.isfinite(est.low) and np.isfinite(est.high):
        interval = f"; {interval_kind} {_fmt_unit(est.low, est.unit)} .. {_fmt_unit(est.high, est.unit)}"
    return (f"measurement: rdmarig calibrate host, {what}{interval}{quality}; records "
            + " ".join(est.record_ids))


def _fmt_unit(v: float, unit: str) -> str:
    if unit == "bytes/s":
        return f"{v / 1e9:.4g}GB/s"
    if unit == "bytes":
        return f"{v:.0f}B"
    if unit in ("s", "s/call"):
        return f"{v * 1e6:.4g}us"
    return f"{v:.4g}{unit}"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def platform_toml(name: str, fits: dict, sources_note: dict) -> str:
    copy_fit: cal.Fit = fits["copy"]
    cr = copy_fit.params
    quality = f"; fit rms relative error {copy_fit.rms_relative_error:.1%} over {copy_fit.n_points} timings"
    clock_hz = _clock_hz()
    clock_source = "/proc/cpuinfo cpu MHz at calibration time" if clock_hz else \
        "assumption: /proc/cpuinfo gives no cpu MHz here; 2 GHz stands in (the copy fits do not use it)"
    clock_hz = clock_hz or 2.0e9
    lines = [
        f"# Written by `rdmarig calibrate host` on {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}",
        f"# host {_platform.node()}, kernel {_platform.release()}, rdmarig {git_sha() or 'unknown'}.",
        "# Figures marked 'measurement' are fits of stored records (their ids are cited); 'assumption'",
        "# marks what the copy probes cannot measure on this host (no NIC, no PCIe, no SMB server).",
        f"name = {_q(name)}",
        f"description = {_q('this host, calibrated from its copy-probe records: ' + (cpu_model() or 'unknown CPU'))}",
        "",
        "[cpu]",
        f"model = {_q(cpu_model() or 'unknown')}",
        f"cores = {os.cpu_count()}",
        f"cores_source = {_q('os.cpu_count() on this host at calibration time')}",
        f"clock = {_q(f'{clock_hz / 1e9:.4g}GHz')}",
        f"clock_source = {_q(clock_source)}",
        f"copy_rate_cache = {_q(_fmt_unit(cr['copy_rate_cache'].value, 'bytes/s'))}",
        f"copy_rate_cache_source = {_q(_cite(cr['copy_rate_cache'], 'copy law fit of one-copier memcpy timings', quality))}",
        f"copy_rate_dram = {_q(_fmt_unit(cr['copy_rate_dram'].value, 'bytes/s'))}",
        f"copy_rate_dram_source = {_q(_cite(cr['copy_rate_dram'], 'copy law fit of one-copier memcpy timings', quality))}",
        f"cache_per_core = {_q(_fmt_unit(cr['cache_per_core'].value, 'bytes'))}",
        f"cache_per_core_source = {_q(_cite(cr['cache_per_core'], 'copy law fit: buffer size where copies leave the cache regime', quality))}",
        "nontemporal_copy = false",
        f"nontemporal_copy_source = {_q('Linux x86-64 copy_to_user/copy_to_iter use rep movsb with ordinary stores (arch/x86/lib/copy_user_64.S)')}",
        f"syscall_time = {_q(_fmt_unit(fits['syscall'].value, 's'))}",
        f"syscall_time_source = {_q(_cite(fits['syscall'], 'per-call sender CPU, pooled over the paths ' + ', '.join(sources_note['syscall_paths']) + ' (includes the per-call socket work, not only entry/exit)'))}",
        "smb_request_time = \"5us\"",
        f"smb_request_time_source = {_q('assumption: parse an SMB2 READ and build the response; not measured (the copy probes carry no SMB)')}",
        "rdma_wr_time = \"0.5us\"",
        f"rdma_wr_time_source = {_q('assumption: post one work request and reap its completion; not measured by the copy probes')}",
        f"tcp_segment_time = {_q(_fmt_unit(fits['segment'].value, 's'))}",
        f"tcp_segment_time_source = {_q(_cite(fits['segment'], 'sendfile per-byte sender CPU x 64 KiB GSO unit on loopback (includes the receive-side softirq that loopback runs on the sender core)'))}",
        "tcp_checksum_rate = \"14GB/s\"",
        f"tcp_checksum_rate_source = {_q('assumption: loopback has checksums fixed on (ethtool -k lo), so the copy probes cannot measure it; shared/notes/host-copy-facts.md veth figure')}",
        "async_handoff_time = \"5us\"",
        f"async_handoff_time_source = {_q('assumption: io_uring punt to an io-wq worker and back; not measured')}",
        "",
        "[memory]",
        f"description = {_q(f'{(mem_total_bytes() or 0) / 2**30:.0f} GiB as seen by this host')}",
    ]
    dram = fits.get("dram")
    if dram is not None:
        lines += [f"dram_bandwidth = {_q(_fmt_unit(dram.value, 'bytes/s'))}",
                  f"dram_bandwidth_source = {_q(_cite(dram, f'all {os.cpu_count()} cores copying DRAM-sized buffers, copy rate x 3 (read + write + write-allocate); a lower bound of what the memory sustains', interval_kind='range over the repetitions'))}",
                  f"dram_peak = {_q(_fmt_unit(dram.value, 'bytes/s'))}",
                  f"dram_peak_source = {_q('assumption: channel layout unknown inside this guest; set to the measured sustained figure')}"]
    else:
        lines += ["dram_bandwidth = \"20GB/s\"",
                  f"dram_bandwidth_source = {_q('assumption: no all-core memcpy record at 64-128 MiB; run rdmarig measure copy --probe memcpy --threads 1,' + str(os.cpu_count()))}",
                  "dram_peak = \"20GB/s\"", f"dram_peak_source = {_q('assumption: as dram_bandwidth')}"]
    lines += [
        "",
        "[nic]",
        "model = \"loopback (lo)\"",
        "ports = 1",
        f"ports_source = {_q('assumption: loopback stands in for the NIC; one interface')}",
        "port_rate = \"200Gbit/s\"",
        f"port_rate_source = {_q('assumption: loopback has no line rate; 25 GB/s is above every path measured here, so the link never binds')}",
        "",
        "[nic.pcie]",
        "generation = 5",
        f"generation_source = {_q('assumption: loopback has no PCIe; Gen5 x16 so it never binds')}",
        "lanes = 16",
        f"lanes_source = {_q('assumption: loopback has no PCIe; Gen5 x16 so it never binds')}",
        "max_payload = \"256B\"",
        f"max_payload_source = {_q('assumption: loopback has no PCIe')}",
        "tlp_overhead = \"20B\"",
        f"tlp_overhead_source = {_q('assumption: loopback has no PCIe')}",
        "read_completion = \"64B\"",
        f"read_completion_source = {_q('assumption: loopback has no PCIe')}",
        "",
        "# no [[dma]]: /sys/class/dma is empty on this host (no DMA-engine drivers)",
    ]
    return "\n".join(lines) + "\n"


def _clock_hz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) * 1e6
    except (OSError, ValueError):
        pass
    return None


# --------------------------------------------------------------------------- the command

FIT_COLUMNS = [Column("parameter", "parameter"), Column("value", "value"), Column("interval", "95% interval"),
               Column("points", "points", "{:d}"), Column("rms", "rms rel. error", "{:.1%}"),
               Column("max", "max rel. error", "{:.1%}"), Column("records", "records", "{:d}")]
PATH_COLUMNS = [Column("path", "path"), Column("per_byte", "per byte [CPU-s/GB]", "{:.3f}"),
                Column("per_byte_ci", "95% interval [CPU-s/GB]"),
                Column("per_call", "per call [us]", "{:.2f}"), Column("per_call_ci", "95% interval [us]"),
                Column("points", "points", "{:d}"), Column("rms", "rms rel. error", "{:.1%}")]
COMPARE_COLUMNS = [Column("path", "path"), Column("chunk", "chunk [B]", "{:d}"),
                   Column("measured_gbps", "measured [GB/s]", "{:.2f}"),
                   Column("predicted_gbps", "model [GB/s]", "{:.2f}"),
                   Column("gbps_error", "error [%]", "{:+.0f}"),
                   Column("measured_cpu", "measured sender [CPU-s/GB]", "{:.3f}"),
                   Column("predicted_cpu", "model [CPU-s/GB]", "{:.3f}"),
                   Column("cpu_error", "error [%]", "{:+.0f}"),
                   Column("binding", "model's binding resource"),
                   Column("foreign", "foreign load [CPU-s/s]", "{:.2f}"), Column("records", "records", "{:d}")]


def _ci(est: cal.Estimate, scale: float) -> str:
    if not (np.isfinite(est.low) and np.isfinite(est.high)):
        return "-"
    return f"{est.low * scale:.3g} .. {est.high * scale:.3g}"


@app.command("host")
def host(
    out: Path = typer.Option(schema.PLATFORM_DIR / "this-host.toml", "--out",
                             help="Platform profile to write (in scenarios/platforms/ it becomes a "
                                  "built-in platform: `rdmarig plan ... --platform this-host`)."),
    name: str = typer.Option("this-host", "--name", help="Platform name inside the profile."),
    scenario: str = typer.Option("smb-tcp-loopback", "--scenario",
                                 help="Scenario whose copy paths are compared with the measurements."),
    store_path: Optional[Path] = StoreOption,
) -> None:
    """Fit this host's copy and kernel costs from stored copy-probe records; write a platform profile."""
    wanted = store_path or default_store_path()
    if not os.environ.get("RDMARIG_SPOOL") and not Path(wanted).exists():  # opening would create it
        raise InputError(f"there is no result store at {wanted}",
                         "run `rdmarig measure copy` first, or pass --store PATH of an existing store")
    with open_store(store_path) as store:
        mem_all = _this_host(store.query(kind="measured", name="copy.memcpy"))
        sock_all = _this_host(store.query(kind="measured", name="copy.socket"))
        where = store.path
    if not mem_all or not sock_all:
        raise InputError(f"{where} has no copy.memcpy and copy.socket records of this host "
                         f"({len(mem_all)} memcpy, {len(sock_all)} socket)",
                         "run `rdmarig measure copy` first (same --store)")
    mem, mem_noisy = mem_all, _noise_note(mem_all)
    sock, sock_noisy = sock_all, _noise_note(sock_all)

    try:
        copy_fit = cal.fit_copy_rates(memcpy_points(mem))
    except ValueError as exc:
        raise InputError(f"cannot fit the copy law: {exc}",
                         "run `rdmarig measure copy --probe memcpy` with sizes 64KiB..128MiB") from None
    path_fits: dict[str, cal.Fit] = {}
    for path, pts in sorted(socket_points(sock).items()):
        try:
            path_fits[path] = cal.fit_per_call_costs(pts)
        except ValueError:
            continue
    if "sendfile" not in path_fits:
        raise InputError("no sendfile records at two or more chunk sizes (loopback, tmpfs) to fit the TCP stack cost",
                         "run `rdmarig measure copy --probe socket --paths sendfile --sizes 64KiB,1MiB,8MiB`")
    per_call = {p: f.params["per_call_seconds"] for p, f in path_fits.items()
                if np.isfinite(f.params["per_call_seconds"].high)}
    syscall = cal.pooled(list(per_call.values()), "s/call")
    sf = path_fits["sendfile"].params["per_byte_seconds"]
    segment = cal.Estimate(sf.value * GSO_BYTES, sf.low * GSO_BYTES, sf.high * GSO_BYTES, "s", sf.record_ids)
    fits = {"copy": copy_fit, "syscall": syscall, "segment": segment, "dram": dram_estimate(mem)}

    text = platform_toml(name, fits, {"syscall_paths": sorted(per_call)})
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write ({exc.strerror})", "pass a writable path") from None
    plat = schema.load_platform(out)  # the profile must load as any other

    rows = []
    for key, label in (("copy_rate_cache", "cpu.copy_rate_cache"), ("copy_rate_dram", "cpu.copy_rate_dram"),
                       ("cache_per_core", "cpu.cache_per_core")):
        e = copy_fit.params[key]
        rows.append({"parameter": label, "value": _fmt_unit(e.value, e.unit),
                     "interval": f"{_fmt_unit(e.low, e.unit)} .. {_fmt_unit(e.high, e.unit)}",
                     "points": copy_fit.n_points, "rms": copy_fit.rms_relative_error,
                     "max": copy_fit.max_relative_error, "records": len(e.record_ids)})
    for label, e in (("cpu.syscall_time", syscall), ("cpu.tcp_segment_time", segment)):
        rows.append({"parameter": label, "value": _fmt_unit(e.value, "s"),
                     "interval": f"{_fmt_unit(e.low, 's')} .. {_fmt_unit(e.high, 's')}",
                     "records": len(e.record_ids)})
    if fits["dram"] is not None:
        e = fits["dram"]
        rows.append({"parameter": "memory.dram_bandwidth", "value": _fmt_unit(e.value, e.unit),
                     "interval": f"{_fmt_unit(e.low, e.unit)} .. {_fmt_unit(e.high, e.unit)} (range)",
                     "records": len(e.record_ids)})
    notes = [f"memcpy records: {len(mem)} used, {mem_noisy}", f"socket records: {len(sock)} used, {sock_noisy}"]
    typer.echo(render(Table(f"fitted host parameters -> {out}", FIT_COLUMNS, rows, notes), "md"))

    prow = []
    for path, f in path_fits.items():
        b, c = f.params["per_byte_seconds"], f.params["per_call_seconds"]
        prow.append({"path": path, "per_byte": b.value * 1e9, "per_byte_ci": _ci(b, 1e9),
                     "per_call": c.value * 1e6, "per_call_ci": _ci(c, 1e6), "points": f.n_points,
                     "rms": f.rms_relative_error})
    typer.echo(render(Table("sender CPU per path = per byte + per call x calls (loopback, tmpfs source)",
                            PATH_COLUMNS, prow), "md"))
    typer.echo(render(compare_table(scenario, out, sock), "md"), nl=False)


def compare_table(scenario: str, platform_file: Path, records: list[Record]) -> Table:
    """The model on the calibrated profile against every measured (path, chunk) of the scenario."""
    s = schema.load_scenario(scenario, platform=platform_file)
    measured: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for r in records:
        if r.params.get("via") == "loopback" and r.params.get("source") == "tmpfs":
            measured[(r.params["path"], int(r.params["io_size_bytes"]))].append(r)
    chunks = sorted({c for _, c in measured})
    if not chunks:
        return Table("model vs measured", COMPARE_COLUMNS, [], ["no loopback tmpfs socket records"])
    # the probes carry no SMB request: compare without the per-request SMB cost
    ev = evaluate_with_overrides(s, {"cpu.smb_request_time": 0.0}, grid={"workload.io_size": chunks})
    rows, errors_gbps, errors_cpu = [], [], []
    for row in report.rows(ev):
        key = (row["copy_path"], int(row["io_size_bytes"]))
        recs = measured.get(key)
        if not recs:
            continue
        gbps = float(np.median([v for r in recs for v in r.samples["gbytes_per_s"] if v]))
        cpu = float(np.median([sum(r.samples[f"tx_{k}_cpu_s_per_gb"][i] or 0 for k in ("user", "system", "softirq"))
                               for r in recs for i in range(len(r.samples["gbytes_per_s"]))]))
        pg, pc = row["throughput_bytes_per_s"] / 1e9, row["cpu_s_per_gb"]
        eg, ec = (pg / gbps - 1) * 100, (pc / cpu - 1) * 100
        errors_gbps.append(abs(eg))
        errors_cpu.append(abs(ec))
        rows.append({"path": key[0], "chunk": key[1], "measured_gbps": gbps, "predicted_gbps": pg, "gbps_error": eg,
                     "measured_cpu": cpu, "predicted_cpu": pc, "cpu_error": ec, "binding": row["binding"],
                     "foreign": float(np.median([v for r in recs for v in r.samples.get("foreign_cpu_per_s", [])
                                                 if v is not None] or [np.nan])),
                     "records": len(recs)})
    notes = [f"throughput: median |error| {np.median(errors_gbps):.0f}%, max {np.max(errors_gbps):.0f}%; "
             f"sender CPU per GB: median |error| {np.median(errors_cpu):.0f}%, max {np.max(errors_cpu):.0f}%"
             if rows else "no measured path matches a copy path of the scenario",
             "model: scenario " + s.name + " on the calibrated profile, cpu.smb_request_time = 0 (the probes send "
             "raw file data); measured: median over the stored repetitions",
             "the model's CPU covers the sender only; on loopback the receiver's copy runs on the other core",
             "measured throughput assumes nothing else runs: where other tenants took CPU (foreign load) it is "
             "lower than the model's, while CPU per GB is not affected"]
    return Table(f"model vs measured: {s.name} on {platform_file}", COMPARE_COLUMNS, rows, notes)
