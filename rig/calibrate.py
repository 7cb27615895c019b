"""Calibration, the rig's side: this host's stored records -> fit points -> measured figures.

Reads nothing but the records it is given (the CLI opens the store) and returns data:

    memcpy_points / socket_points / dram_estimate   records -> points for models.calibrate
    fit_host(memcpy records, socket records)        -> HostFit (the fits, or an InputError saying
                                                       which measurement is missing)
    measured_figures(fit)                           -> {'cpu.copy_rate_cache': Measured, ...}, each
                                                       citing the record ids it rests on
    measured_side(socket records)                   -> the measured column of the model-vs-measured table
    host_profile(...) / choose_base(...)            -> what a new profile of this host says of itself

Writing the figures into a profile is scenarios/platform_writer.py's job; the CLI composes.
"""

from __future__ import annotations

import os
import platform as _platform
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from models import calibrate as cal
from results.provenance import cpu_model, mem_total_bytes
from results.record import Record
from scenarios.errors import InputError
from scenarios.platform import Measured, Platform
from scenarios.profile import measured_figure
from scenarios.units import GB, MHZ, quantity_text

GSO_BYTES = 65536                 # lo's GSO unit: one TCP send unit per 64 KiB
# glibc memcpy switches to non-temporal stores above a threshold it derives from the cache size
# (240 MiB on the rig host); records carry the measured one (provenance.glibc_memcpy), older
# records fall back to this figure
NONTEMPORAL_BELOW_BYTES = 192 << 20


def _cached_copy(r: Record, size: float) -> bool:
    """Did this copy use ordinary stores (the copy law's regime), not glibc's non-temporal ones?"""
    limit = (r.provenance.get("glibc_memcpy") or {}).get("non_temporal_threshold_bytes") or NONTEMPORAL_BELOW_BYTES
    return size < limit
PER_CALL_MIN_BYTES = 64 << 10     # below this the probe's Python call cost is comparable to the copy
BY = "rdmarig calibrate host"


# --------------------------------------------------------------------------- records -> points

def this_host(records: list[Record]) -> list[Record]:
    host, cpu = _platform.node(), cpu_model()
    return [r for r in records if r.provenance.get("host") == host and r.provenance.get("cpu_model") == cpu]


def noise_note(records: list[Record]) -> str:
    """The fits use CPU time (memcpy per CPU-second, socket CPU-s per GB), which other tenants do
    not inflate much, so noisy records stay in; the note says how many there were."""
    noisy = sum(1 for r in records if r.summary.get("noise_warning"))
    return f"{noisy} of them ran on a busy host (noise warning)" if noisy else "none ran on a busy host"


def memcpy_points(records: list[Record]) -> list[cal.Point]:
    pts = []
    for r in records:
        size = r.params.get("io_size_bytes", 0)
        if r.params.get("processes") != 1 or size < PER_CALL_MIN_BYTES or not _cached_copy(r, size):
            continue
        # per second of CPU the copier got: other tenants on the core do not lower it
        series = r.samples.get("call_corrected_per_cpu_second_gbytes_per_s") or \
            r.samples.get("call_corrected_per_core_gbytes_per_s", [])
        for v in series:
            if v:
                pts.append(cal.Point(float(size), v * GB, r.id))
    return pts


def dram_estimate(records: list[Record]) -> cal.Estimate | None:
    """Sustained DRAM traffic with every core copying: copy rate x 3 (read, write, write-allocate:
    the model's accounting for copies without non-temporal stores), DRAM-sized buffers."""
    ncpu = os.cpu_count() or 1
    best = [r for r in records if r.params.get("processes") == ncpu
            and 64 << 20 <= r.params.get("io_size_bytes", 0) and _cached_copy(r, r.params["io_size_bytes"])]
    if not best:
        return None
    values = np.array([v for r in best for v in r.samples.get("total_gbytes_per_s", []) if v]) * GB * 3
    if values.size == 0:
        return None
    return cal.Estimate(float(np.max(values)), float(np.min(values)), float(np.max(values)), "bytes/s",
                        tuple(sorted(r.id for r in best)))


def _loopback_tmpfs(r: Record) -> bool:
    return r.params.get("via") == "loopback" and r.params.get("source") == "tmpfs"


def _sender_cpu_s_per_gb(r: Record, i: int) -> float | None:
    parts = [r.samples.get(f"tx_{k}_cpu_s_per_gb", [None] * (i + 1))[i] for k in ("user", "system", "softirq")]
    return None if any(p is None for p in parts) else float(sum(parts))


def socket_points(records: list[Record]) -> dict[str, list[cal.Point]]:
    """Per path: (calls per byte, sender CPU seconds per byte) for every repetition."""
    out: dict[str, list[cal.Point]] = defaultdict(list)
    for r in records:
        if not _loopback_tmpfs(r):
            continue
        calls = r.samples.get("calls_sent_per_gb")
        if not calls:
            continue
        for i, c in enumerate(calls):
            cpu = _sender_cpu_s_per_gb(r, i)
            if c and cpu is not None:
                out[r.params["path"]].append(cal.Point(c / GB, cpu / GB, r.id))
    return dict(out)


# --------------------------------------------------------------------------- fits -> figures

@dataclass(frozen=True)
class HostFit:
    copy: cal.Fit                       # the copy law over one-copier memcpy timings
    paths: dict[str, cal.Fit]           # per socket path: per byte + per call
    syscall: cal.Estimate               # per-call costs pooled over the paths
    syscall_paths: tuple[str, ...]
    segment: cal.Estimate               # sendfile's per-byte cost x one GSO unit
    dram: cal.Estimate | None           # all-core copy rate x 3, when measured


def fit_host(memcpy: list[Record], sockets: list[Record]) -> HostFit:
    try:
        copy_fit = cal.fit_copy_rates(memcpy_points(memcpy))
    except ValueError as exc:
        raise InputError(f"cannot fit the copy law: {exc}",
                         "run `rdmarig measure copy --probe memcpy` with sizes 64KiB..128MiB") from None
    path_fits: dict[str, cal.Fit] = {}
    for path, pts in sorted(socket_points(sockets).items()):
        try:
            path_fits[path] = cal.fit_per_call_costs(pts)
        except ValueError:
            continue
    if "sendfile" not in path_fits:
        raise InputError("no sendfile records at two or more chunk sizes (loopback, tmpfs) to fit the TCP stack cost",
                         "run `rdmarig measure copy --probe socket --paths sendfile --sizes 64KiB,1MiB,8MiB`")
    per_call = {p: f.params["per_call_seconds"] for p, f in path_fits.items()
                if np.isfinite(f.params["per_call_seconds"].high)}
    sf = path_fits["sendfile"].params["per_byte_seconds"]
    segment = cal.Estimate(sf.value * GSO_BYTES, sf.low * GSO_BYTES, sf.high * GSO_BYTES, "s", sf.record_ids)
    return HostFit(copy=copy_fit, paths=path_fits, syscall=cal.pooled(list(per_call.values()), "s/call"),
                   syscall_paths=tuple(sorted(per_call)), segment=segment, dram=dram_estimate(memcpy))


def measured_figures(fit: HostFit) -> dict[str, Measured]:
    """The platform figures the fits measure, each with its interval, method and record ids."""
    quality = f" (fit rms relative error {fit.copy.rms_relative_error:.1%} over {fit.copy.n_points} timings)"
    out = {}
    for key, what in (("copy_rate_cache", "copy law fit of one-copier memcpy timings"),
                      ("copy_rate_dram", "copy law fit of one-copier memcpy timings"),
                      ("cache_per_core", "copy law fit: buffer size where copies leave the cache regime")):
        out[f"cpu.{key}"] = _figure(f"cpu.{key}", fit.copy.params[key], f"{BY}, {what}{quality}")
    out["cpu.syscall_time"] = _figure(
        "cpu.syscall_time", fit.syscall,
        f"{BY}, per-call sender CPU pooled over the paths {', '.join(fit.syscall_paths)} "
        "(includes the per-call socket work, not only entry/exit)")
    out["cpu.tcp_segment_time"] = _figure(
        "cpu.tcp_segment_time", fit.segment,
        f"{BY}, sendfile per-byte sender CPU x 64 KiB GSO unit on loopback (includes the receive-side "
        "softirq that loopback runs on the sender core)")
    if fit.dram is not None:
        out["memory.dram_bandwidth"] = _figure(
            "memory.dram_bandwidth", fit.dram,
            f"{BY}, all {os.cpu_count()} cores copying DRAM-sized buffers, copy rate x 3 (read + write + "
            "write-allocate); a lower bound of what the memory sustains", interval="range over the repetitions")
    return out


def _figure(key: str, e: cal.Estimate, method: str, interval: str = "95% fit interval") -> Measured:
    return measured_figure(key, e.value, e.record_ids, method, interval, e.low, e.high)


# --------------------------------------------------------------------------- the measured side

@dataclass(frozen=True)
class MeasuredPoint:
    gbytes_per_s: float                 # median over the stored repetitions
    cpu_s_per_gb: float                 # sender user + system + softirq, median
    foreign_cpu_per_s: float            # other tenants' load while it ran, median (nan: unknown)
    records: int


def measured_side(records: list[Record]) -> dict[tuple[str, int], MeasuredPoint]:
    """{(path, chunk bytes): what the loopback tmpfs socket records measured}."""
    by_point: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for r in records:
        if _loopback_tmpfs(r):
            by_point[(r.params["path"], int(r.params["io_size_bytes"]))].append(r)
    out = {}
    for key, recs in sorted(by_point.items()):
        gbps = [v for r in recs for v in r.samples["gbytes_per_s"] if v]
        cpu = [c for r in recs for i in range(len(r.samples["gbytes_per_s"]))
               if (c := _sender_cpu_s_per_gb(r, i)) is not None]
        foreign = [v for r in recs for v in r.samples.get("foreign_cpu_per_s", []) if v is not None]
        out[key] = MeasuredPoint(_median(gbps), _median(cpu), _median(foreign), len(recs))
    return out


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


# --------------------------------------------------------------------------- a new profile of this host

def choose_base(platforms: Mapping[str, Platform], host_cpu: str | None = None) -> tuple[str, str]:
    """(name of the built-in profile a new profile of this host builds on, why that one): the one
    whose CPU shares the most words with this host's CPU model ('AMD EPYC' -> an EPYC profile)."""
    if not platforms:
        raise InputError("there is no platform profile to build on", "pass --base PROFILE")
    cpu = host_cpu if host_cpu is not None else (cpu_model() or "")
    words = {w.lower() for w in cpu.split() if len(w) > 2}

    def shared(p: Platform) -> int:
        return len(words & {w.lower().strip("()") for w in p.cpu.model.split()})

    datasheet = {n: p for n, p in platforms.items() if not p.base and not p.measured} or dict(platforms)
    name = max(sorted(datasheet), key=lambda n: shared(datasheet[n]))
    score = shared(datasheet[name])
    why = (f"its CPU ({datasheet[name].cpu.model}) is the closest built-in to this host's ({cpu or 'unknown'})"
           if score else f"no built-in CPU resembles this host's ({cpu or 'unknown'}); {name} is the first built-in")
    return name, why + "; the figures the probes cannot measure (SMB request, RDMA WR, checksum, DMA, NIC) come from it"


def _clock_hz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) * MHZ
    except (OSError, ValueError):
        pass
    return None


def _dma_engines() -> list[str]:
    try:
        return sorted(p.name for p in Path("/sys/class/dma").iterdir())
    except OSError:
        return []


def host_profile(base: Platform) -> dict[str, Any]:
    """What a new profile says of this host beside its base: the figures read from the host itself
    (not fitted from records), those where loopback stands in for the NIC, and whether it has DMA
    engines. {"description", "own": {"cpu": [(key, value, source)], ...}, "no_dma_because"}."""
    clock_hz = _clock_hz()
    own: dict[str, list[tuple[str, Any, str | None]]] = {
        "cpu": [("model", cpu_model() or "unknown", None),
                ("cores", os.cpu_count() or 1, "os.cpu_count() on this host at calibration time"),
                ("tcp_checksum_rate", quantity_text(base.cpu.tcp_checksum_rate, "bytes/s"),
                 f"assumption: loopback has checksums fixed on (ethtool -k lo), so the copy probes cannot measure "
                 f"it; the base's figure ({base.name})")],
        "memory": [("description", f"{(mem_total_bytes() or 0) / 2**30:.0f} GiB as seen by this host", None),
                   ("dram_peak", quantity_text(base.memory.dram_peak, "bytes/s"),
                    f"assumption: the channel layout is not visible here; the base's datasheet peak "
                    f"({base.name}) stands as an upper bound")],
        "nic": [("model", "loopback (lo)", None),
                ("ports", 1, "assumption: loopback stands in for the NIC; one interface"),
                ("port_rate", "200Gbit/s", "assumption: loopback has no line rate; 25 GB/s is above every path "
                                           "measured here, so the link never binds")],
        "pcie": [("generation", 5, "assumption: loopback has no PCIe; Gen5 x16 so it never binds"),
                 ("lanes", 16, "assumption: loopback has no PCIe; Gen5 x16 so it never binds")]
        + [(key, quantity_text(getattr(base.nic.pcie, key), "bytes"),
            f"assumption: loopback has no PCIe; the base's figure ({base.name}), it never binds")
           for key in ("max_payload", "tlp_overhead", "read_completion")],
    }
    own["cpu"].append(("clock", quantity_text(clock_hz, "Hz"), "/proc/cpuinfo cpu MHz at calibration time")
                      if clock_hz is not None else
                      ("clock", quantity_text(base.cpu.clock_hz, "Hz"),
                       f"assumption: /proc/cpuinfo gives no cpu MHz here; the base's clock ({base.name}) stands in "
                       "(the copy fits do not use it)"))
    engines = _dma_engines()
    return {"description": f"this host, calibrated from its copy-probe records: {cpu_model() or 'unknown CPU'}",
            "own": own,
            "no_dma_because": "" if engines else "no [[dma]]: /sys/class/dma is empty on this host (no DMA-engine drivers)",
            "dma_engines": engines}
