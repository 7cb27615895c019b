"""Calibration, the rig's side: one place's stored records -> fit points -> measured figures.

Honest comparisons need the parts and the whole measured on the same machine under the same
conditions, so records are grouped by the place they were taken (provenance: host, CPU model,
kernel, `guest_accel`) and one calibration uses one place's records only. Reads nothing but the
records it is given (the CLI opens the store) and returns data:

    places / pick_place                    records -> the places they were taken, the one asked for
    memcpy_points / socket_points / ...    records -> points for models.calibrate
    fit_place(records of one place)        -> PlaceFit (each part fitted where its probe ran)
    fit_soft_rdma(verbs records, scenario) -> the software-RDMA NIC's costs, with the model's equations
    measured_figures(fit)                  -> {'cpu.copy_rate_cache': Measured, ...}, each citing its records
    measured_side(socket records)          -> the measured columns of the model-vs-measured table
    place_profile(...) / choose_base(...)  -> what a new profile of the place says of itself

Writing the figures into a profile is scenarios/platform_writer.py's job; the CLI composes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform as _platform
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from models import calibrate as cal
from results.matrix import is_mpi_pair
from results.provenance import cpu_model, mem_total_bytes
from results.record import Record
from rig.executed_time import executed_fraction
from scenarios.errors import InputError
from scenarios.platform import Measured, Platform
from scenarios.profile import measured_figure
from scenarios.units import GB, MHZ, quantity_text

GSO_BYTES = 65536                 # lo's GSO unit: one TCP send unit per 64 KiB
# glibc memcpy switches to non-temporal stores above a threshold it derives from the cache size
# (240 MiB on the rig host); records carry the measured one (provenance.glibc_memcpy), older
# records fall back to this figure
NONTEMPORAL_BELOW_BYTES = 192 << 20
PER_CALL_MIN_BYTES = 64 << 10     # below this the probe's Python call cost is comparable to the copy
HUGE_PAGE = 2 << 20
BY = "rdmarig calibrate host"
PROBES = ("copy.memcpy", "copy.socket", "copy.fault", "copy.pin", "copy.pagecopy", "copy.csum",
          "copy.mrreg", "copy.crc32", "copy.pread", "copy.handoff", "proto.smbd", "verbs.write.bw", "verbs.read.bw",
          "verbs.send.bw")


def _cached_copy(r: Record, size: float) -> bool:
    """Did this copy use ordinary stores (the copy law's regime), not glibc's non-temporal ones?"""
    limit = (r.provenance.get("glibc_memcpy") or {}).get("non_temporal_threshold_bytes") or NONTEMPORAL_BELOW_BYTES
    return size < limit


# --------------------------------------------------------------------------- places

@dataclass(frozen=True)
class Place:
    """Where records were taken: a machine (host name, CPU model, kernel), a guest under an
    accelerator or not."""
    host: str
    cpu: str
    kernel: str
    guest_accel: str | None

    @property
    def is_guest(self) -> bool:
        return bool(self.guest_accel)

    @property
    def label(self) -> str:
        where = f"guest ({self.guest_accel})" if self.is_guest else f"host {self.host}"
        return f"{where}: {self.cpu or 'unknown CPU'}, kernel {self.kernel or 'unknown'}"


def place_of(r: Record) -> Place:
    p = r.provenance
    return Place(str(p.get("host") or ""), str(p.get("cpu_model") or ""), str(p.get("kernel") or ""),
                 p.get("guest_accel") or None)


def places(records: Iterable[Record]) -> dict[Place, list[Record]]:
    out: dict[Place, list[Record]] = defaultdict(list)
    for r in records:
        out[place_of(r)].append(r)
    return dict(out)


def this_machine() -> Place:
    return Place(_platform.node(), cpu_model() or "", _platform.release(), None)


def pick_place(records: list[Record], want: str) -> tuple[Place, list[Record]]:
    """The records of one place: `host` (this machine, as it runs now), `guest` (the soft-RoCE
    guest: the place of the newest guest record), or a place's label as `places` prints it."""
    found = places(records)
    if want == "host":
        here = this_machine()
        mine = {p: rs for p, rs in found.items() if not p.is_guest and p.host == here.host and p.cpu == here.cpu}
        if not mine:
            raise InputError(f"no records of this host ({here.label}) in the store",
                             "run `rdmarig measure copy` here first, or pick another --place: "
                             + _known(found))
        best = here if here in mine else max(mine, key=lambda p: max(r.created for r in mine[p]))
        return best, mine[best]
    if want == "guest":
        guests = {p: rs for p, rs in found.items() if p.is_guest}
        if not guests:
            raise InputError("no records of the soft-RoCE guest in the store",
                             "run `rdmarig guest run -- rdmarig measure verbs ...` (and `measure copy`) first")
        best = max(guests, key=lambda p: max(r.created for r in guests[p]))
        return best, guests[best]
    for p, rs in found.items():
        if want in (p.label, p.host):
            return p, rs
    raise InputError(f"--place {want!r}: no records of that place", f"use host, guest or one of: {_known(found)}")


def _known(found: Mapping[Place, list]) -> str:
    return "; ".join(f"{p.label!r} ({len(rs)} records)" for p, rs in found.items()) or "(the store has none)"


def place_summary(place: Place, records: list[Record]) -> str:
    """'41 records of host X (...): copy.memcpy 14, copy.socket 24, ..., 2026-11-30 21:54 .. 22:03'."""
    kinds = defaultdict(int)
    for r in records:
        kinds[r.name] += 1
    dates = sorted(r.created for r in records)
    span = f"{dates[0][:16].replace('T', ' ')} .. {dates[-1][:16].replace('T', ' ')} UTC" if dates else "-"
    return (f"{len(records)} records of {place.label}: "
            + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + f"; taken {span}")


# A guest point whose records ran with the host's steal above this share ran on a loaded host: a flag,
# chosen between what was measured quiet and loaded (docs/smbd.md, "The 19:32 session and executed
# time"): at a steal of 2 % or less the host executed 0.94-1.00 of the guest's busy time, at 12-27 %
# three `measure smbd` runs got 0.62-0.75. Steal in spells did not always cost that much (22:07
# session: 0.87-0.99), so the executed share, not this flag, is what the predictions take.
LOADED_HOST_STEAL = 0.10


def host_steal_fraction(r: Record) -> float | None:
    """The host's steal share over a guest record's span (provenance host_cpu_under_guest); None: not known."""
    v = ((r.provenance or {}).get("host_cpu_under_guest") or {}).get("steal_fraction")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def conditions_note(parts: list[Record], whole: list[Record]) -> str | None:
    """The host's steal and the executed share (guest records' provenance) of the parts against the
    whole, medians: a comparison is honest only where both ran under the same; None where no record says."""
    def med(records: list[Record], of) -> str:
        values = [v for v in map(of, records) if v is not None]
        return f"{_median(values):.2f} ({min(values):.2f}-{max(values):.2f}, {len(values)} records)" if values else "-"
    rows = [(what, med(parts, of), med(whole, of)) for what, of in (
        ("host steal share", host_steal_fraction), ("executed share of guest busy time", executed_fraction))]
    if all(p == "-" and w == "-" for _, p, w in rows):
        return None
    return "conditions, parts against whole (medians): " + "; ".join(f"{what} {p} against {w}" for what, p, w in rows)


def of_kind(records: list[Record], *names: str) -> list[Record]:
    return [r for r in records if r.kind == "measured" and r.name in names]


def noise_note(records: list[Record]) -> str:
    """The fits use CPU time (memcpy per CPU-second, socket CPU-s per GB), which other tenants do
    not inflate much, so noisy records stay in; the note says how many there were."""
    noisy = sum(1 for r in records if r.summary.get("noise_warning"))
    return f"{noisy} of them ran on a busy host (noise warning)" if noisy else "none ran on a busy host"


def foreign_load(records: list[Record]) -> tuple[float, float]:
    """(median, max) foreign CPU-s per second while the records ran (nan when none say)."""
    values = [v for r in records for v in (r.samples.get("foreign_cpu_per_s") or [r.summary.get("foreign_cpu_per_s")])
              if isinstance(v, (int, float))]
    return (float(np.median(values)), float(np.max(values))) if values else (float("nan"), float("nan"))


# --------------------------------------------------------------------------- records -> points

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
    best = [r for r in records if r.params.get("processes") == (r.provenance.get("cpu_count") or os.cpu_count())
            and 64 << 20 <= r.params.get("io_size_bytes", 0) and _cached_copy(r, r.params["io_size_bytes"])]
    if not best:
        return None
    # per second of CPU each copier got, times the copiers: other tenants on the cores do not lower it
    values = np.array([v * r.params["processes"] for r in best for v in
                       (r.samples.get("per_cpu_second_gbytes_per_s") or []) if v]
                      or [v for r in best for v in r.samples.get("total_gbytes_per_s", []) if v]) * GB * 3
    if values.size == 0:
        return None
    return cal.Estimate(float(np.max(values)), float(np.min(values)), float(np.max(values)), "bytes/s",
                        tuple(sorted(r.id for r in best)))


def _loopback_tmpfs(r: Record) -> bool:
    return r.params.get("via") == "loopback" and r.params.get("source") == "tmpfs"


def _side_cpu_s_per_gb(r: Record, side: str, i: int) -> float | None:
    parts = [(r.samples.get(f"{side}_{k}_cpu_s_per_gb") or [None] * (i + 1))[i] for k in ("user", "system", "softirq")]
    return None if any(p is None for p in parts) else float(sum(parts))


def socket_points(records: list[Record], side: str = "tx") -> dict[str, list[cal.Point]]:
    """Per path: (calls per byte, CPU seconds per byte of one side) for every repetition; tx = the
    sender (calls sent), rx = the receiver (calls received)."""
    key = "calls_sent_per_gb" if side == "tx" else "calls_received_per_gb"
    out: dict[str, list[cal.Point]] = defaultdict(list)
    for r in records:
        if not _loopback_tmpfs(r):
            continue
        for i, c in enumerate(r.samples.get(key) or []):
            cpu = _side_cpu_s_per_gb(r, side, i)
            if c and cpu is not None:
                out[r.params["path"]].append(cal.Point(c / GB, cpu / GB, r.id))
    return dict(out)


def _samples(records: list[Record], key: str) -> list[tuple[float, str]]:
    return [(float(v), r.id) for r in records for v in (r.samples.get(key) or []) if isinstance(v, (int, float))]


def _median_estimate(values: list[tuple[float, str]], unit: str, interval_of=lambda v: v) -> cal.Estimate:
    """Median over the repetitions; low..high = their range (after `interval_of`)."""
    v = np.array([x for x, _ in values])
    return cal.Estimate(float(np.median(v)), float(np.min(v)), float(np.max(v)), unit,
                        tuple(sorted({i for _, i in values})))


def _two_kinds(records: list[Record], kind_key: str, value_key: str) -> tuple[list, list] | None:
    small = _samples([r for r in records if r.params.get(kind_key) == "4k"], value_key)
    huge = _samples([r for r in records if r.params.get(kind_key) == "thp"], value_key)
    return (small, huge) if small and huge else None


def fault_estimates(records: list[Record]) -> dict[str, cal.Estimate]:
    """copy.fault, 4 KiB and THP: t_page = a + page_bytes / z through the two kinds -> cpu.page_fault_time
    (a) and cpu.page_zero_rate (z); the 4 KiB unmap per page -> cpu.unmap_page_time."""
    both = _two_kinds(records, "page_kind", "cpu_seconds_per_page")
    out: dict[str, cal.Estimate] = {}
    ids = tuple(sorted(r.id for r in records))
    if both:
        small, huge = both
        sol = []
        for a4, _ in small:
            for b2, _ in huge:
                z = (HUGE_PAGE - 4096) / (b2 - a4) if b2 > a4 else float("nan")
                sol.append((a4 - 4096 / z, z))
        ok = [(a, z) for a, z in sol if math.isfinite(z) and a > 0]
        if ok:
            a = np.array([x for x, _ in ok])
            z = np.array([y for _, y in ok])
            s4 = float(np.median([v for v, _ in small]))
            s2 = float(np.median([v for v, _ in huge]))
            zm = (HUGE_PAGE - 4096) / (s2 - s4) if s2 > s4 else float("nan")
            am = s4 - 4096 / zm
            # the medians' own solution must be physical too: under TCG a THP fault zeroed 2 MiB slower
            # per byte than a 4 KiB fault cost whole (guest, 2026-12-01 16:35 UTC: 18-22 us per 4 KiB page,
            # 9.4-11.6 ms per THP), which leaves no time per fault; then neither figure is written
            if math.isfinite(zm) and am > 0:
                out["cpu.page_fault_time"] = cal.Estimate(am, min(float(a.min()), am), max(float(a.max()), am), "s", ids)
                out["cpu.page_zero_rate"] = cal.Estimate(zm, min(float(z.min()), zm), max(float(z.max()), zm),
                                                         "bytes/s", ids)
    unmap = _samples([r for r in records if r.params.get("page_kind") == "4k"], "unmap_cpu_seconds_per_page")
    if unmap:
        out["cpu.unmap_page_time"] = _median_estimate(unmap, "s")
    return out


def pin_estimates(records: list[Record]) -> dict[str, cal.Estimate]:
    """copy.pin uring-register (pin_user_pages, FOLL_LONGTERM), 4 KiB pages and THP, both per 4 KiB:
    t = a + b (one folio per page) and t = a + b / 512 -> cpu.pin_page_time (a), cpu.pin_folio_time (b)."""
    regs = [r for r in records if r.params.get("method") == "uring-register"]
    both = _two_kinds(regs, "page_kind", "cpu_seconds_per_page")
    if not both:
        return {}
    small, huge = both
    s4 = float(np.median([v for v, _ in small]))
    s2 = float(np.median([v for v, _ in huge]))
    a = (512 * s2 - s4) / 511
    b = s4 - a
    if a <= 0 or b <= 0:          # THP no cheaper per 4 KiB (under TCG): no split; the pair is not written
        return {}
    pairs = [((512 * y - x) / 511, x - (512 * y - x) / 511) for x, _ in small for y, _ in huge]
    pa = np.array([p for p, _ in pairs if p > 0] or [a])
    pb = np.array([q for _, q in pairs if q > 0] or [b])
    ids = tuple(sorted(r.id for r in regs))
    return {"cpu.pin_page_time": cal.Estimate(a, float(pa.min()), float(pa.max()), "s", ids),
            "cpu.pin_folio_time": cal.Estimate(b, float(pb.min()), float(pb.max()), "s", ids)}


def pagecopy_estimate(records: list[Record], copy_rate_dram: float) -> tuple[cal.Estimate, str] | None:
    """copy.pagecopy THP records solve t = per_byte x bytes + per_piece x pieces against their 4 KiB
    twin: the per-piece figure is the step a kernel copy takes per page (cpu.copy_page_time). Where
    the two kinds do not fit that law (a THP copy slower per byte than 4 KiB pages: the solve's
    per-piece figure is negative, as under TCG emulation), the 4 KiB record alone gives it: its time
    per page less 4 KiB at the copy law's DRAM-regime rate. (estimate, how)"""
    values = _samples([r for r in records if r.params.get("page_kind") == "thp"], "fitted_per_page_cpu_seconds_per_page")
    if not values:
        values = [(float(r.summary["fitted_per_page_cpu_seconds_per_page"]), r.id) for r in records
                  if isinstance(r.summary.get("fitted_per_page_cpu_seconds_per_page"), (int, float))]
    if values and all(v >= 0 for v, _ in values):
        return _median_estimate(values, "s"), "the per-page step of a tmpfs read, 4 KiB vs 2 MiB folios"
    small = _samples([r for r in records if r.params.get("page_kind") == "4k"], "cpu_seconds_per_page")
    rest = [(v - 4096 / copy_rate_dram, i) for v, i in small if v > 4096 / copy_rate_dram]
    if not rest:
        return None
    return _median_estimate(rest, "s"), ("the 4 KiB-folio tmpfs read's time per page less 4 KiB at the copy law's "
                                         "DRAM rate (the THP kind did not fit per byte + per page here)")


def pread_estimates(records: list[Record], copy_rate_dram: float) -> dict[str, tuple[cal.Estimate, str]]:
    """copy.pread records (the cpu-copy server's pread, alone, beside a soft-RoCE chain, and posting it):
    cpu.copy_page_time = the pread's CPU per 4 KiB page alone less 4 KiB at the copy law's DRAM-regime
    rate (the kernel's step per page of a page-cache read, as the server runs it); and
    nic.soft_copy_absorption = (CPU per byte with the chain - alone) / alone per size: the chain's
    softirq the kernel runs at the copying thread's interrupt exits per second of its own copying,
    from the runs where the copying thread posts the chain (as the serving thread does) where there
    are any, else from those beside another process's chain.
    Medians over the sizes, range low..high. {key: (estimate, how)}"""
    alone: dict[int, list[tuple[float, str]]] = defaultdict(list)
    beside: dict[int, list[tuple[float, str]]] = defaultdict(list)
    posting: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for r in records:
        size = int(r.params.get("io_size_bytes") or 0)
        into = posting if r.params.get("own_chain") else beside if r.params.get("beside_chain") else alone
        for v in r.samples.get("cpu_s_per_gb") or []:
            if isinstance(v, (int, float)) and v > 0 and size > 0:
                into[size].append((float(v), r.id))
    # the copying thread posting the chain itself is the serving thread's condition: those runs where
    # there are any, else the runs beside another process's chain
    chained, method = (posting, _POSTING_METHOD) if posting else (beside, _EXTRA_METHOD["nic.soft_copy_absorption"])
    out: dict[str, tuple[cal.Estimate, str]] = {}
    law = 4096 / copy_rate_dram
    steps = [(v * 4096 / GB - law, i) for vals in alone.values() for v, i in vals if v * 4096 / GB > law]
    if steps:
        out["cpu.copy_page_time"] = (_median_estimate(steps, "s"),
                                     "copy.pread alone: the cpu-copy server's pread per 4 KiB page less 4 KiB at "
                                     "the copy law's DRAM rate, over the sizes")
    sizes = sorted(set(alone) & set(chained))
    if sizes:
        grown = np.array([max(b - a, 0.0) / a for a, b in
                          ((float(np.median([v for v, _ in alone[s]])), float(np.median([v for v, _ in chained[s]])))
                           for s in sizes)])
        ids = tuple(sorted({i for s in sizes for _, i in alone[s] + chained[s]}))
        out["nic.soft_copy_absorption"] = (cal.Estimate(float(np.median(grown)), float(grown.min()),
                                                        float(grown.max()), "", ids),
                                           method)
    return out


def csum_estimate(records: list[Record]) -> tuple[cal.Estimate, dict[str, float]] | None:
    """copy.csum offload-off records: the sender's extra CPU per byte is one checksum pass
    (csum_partial) -> cpu.tcp_checksum_rate = 1 / extra; per path the tx and rx extras for the table."""
    off = [r for r in records if r.params.get("checksum_offload") in (False, 0, "off")]
    tx = [(float(r.summary["offload_off_extra_tx_cpu_s_per_gb"]), r.id) for r in off
          if isinstance(r.summary.get("offload_off_extra_tx_cpu_s_per_gb"), (int, float))
          and r.summary["offload_off_extra_tx_cpu_s_per_gb"] > 0]
    if not tx:
        return None
    e = _median_estimate(tx, "s/GB")
    rate = cal.Estimate(GB / e.value, GB / e.high, GB / e.low if e.low > 0 else float("inf"), "bytes/s", e.record_ids)
    per_path = {f"{r.params.get('path')} {side}": float(r.summary[f"offload_off_extra_{side}_cpu_s_per_gb"])
                for r in off for side in ("tx", "rx")
                if isinstance(r.summary.get(f"offload_off_extra_{side}_cpu_s_per_gb"), (int, float))}
    return rate, per_path


def mrreg_fit(records: list[Record]) -> cal.Fit | None:
    """copy.mrreg of the file source (what zero-copy registers per I/O: a read-only mapping of page-cache
    pages): CPU per registration + deregistration = a + b x pages over the sizes, fitted per page
    (y = CPU per page, x = registrations per page). per_call_seconds is a (cpu.mr_register_time: the
    call beyond its pages), per_byte_seconds is b per 4 KiB page (pinning and rxe's page map)."""
    pts = [cal.Point(4096.0 / float(r.params["io_size_bytes"]), v / (float(r.params["io_size_bytes"]) / 4096.0), r.id)
           for r in records if r.params.get("source") == "file"
           for v in (r.samples.get("cpu_seconds_per_registration") or []) if isinstance(v, (int, float))]
    try:
        return cal.fit_per_call_costs(pts)
    except ValueError:
        return None


@dataclass(frozen=True)
class ExchangeCpu:
    """proto.smbd at its deepest depth: each end's whole CPU (user + system) per request/response
    exchange, one value per repetition, and the server's data WRs per exchange (one one-packet RDMA
    WRITE since 2026-12-01; none before)."""
    server: list[tuple[float, str]]
    client: list[tuple[float, str]]
    data_wrs: int = 0
    flows_loops: bool = False                  # run by the flows' own serving and client loops


def request_estimate(records: list[Record]) -> ExchangeCpu | None:
    """proto.smbd: each end's CPU per request/response exchange (the flows' serving and client loops
    at a one-packet READ: take the message, parse the request, post the data WR, build the response,
    grant credits, post the SENDs and reap them, the client's bookkeeping and block check; and the
    kernel's work on those one-packet WRs) at the deepest depth measured, where requests wait for
    the serving thread as in `measure smbd`'s runs and it seldom sleeps. Records from before the
    part posted a data WR (no `data_wrs`) count as none; records of the part's own loops (no
    `loops: flows`, before 2026-12-02) give way to the flows' where a store holds both."""
    if not records:
        return None
    # a store with several kinds: the newest - the flows' own loops (since 2026-12-02) over the part's
    # loops with a data WR (2026-12-01) over those without - and its deepest depth
    kind = lambda r: (int(r.params.get("data_wrs") or 0), r.params.get("loops") == "flows")  # noqa: E731
    newest = max(kind(r) for r in records)
    of_kind = [r for r in records if kind(r) == newest]
    deepest = max(int(r.params.get("requests_in_flight") or 0) for r in of_kind)
    at = [r for r in of_kind if int(r.params.get("requests_in_flight") or 0) == deepest]
    data_wrs = newest[0]
    server = _samples(at, "server_cpu_seconds_per_exchange")
    client = _samples(at, "client_cpu_seconds_per_exchange")
    return ExchangeCpu(server, client, data_wrs, newest[1]) if server and len(server) == len(client) else None


def crc32_estimate(records: list[Record]) -> cal.Estimate | None:
    """copy.crc32: CPU seconds per GB of the client's integrity check over the sizes -> bytes/s; the
    range: the repetitions."""
    values = _samples(records, "cpu_s_per_gb")
    if not values:
        return None
    e = _median_estimate(values, "s/GB")
    return cal.Estimate(GB / e.value, GB / e.high, GB / e.low if e.low > 0 else float("inf"), "bytes/s", e.record_ids)


def handoff_estimate(records: list[Record]) -> cal.Estimate | None:
    """copy.handoff: CPU seconds per READ that io_uring's hand-off to an io-wq worker adds over a
    pread of the same bytes, over the depths measured; the range: their repetitions. The model
    charges both one call per I/O apart (cpu.syscall_time)."""
    values = _samples(records, "handoff_cpu_seconds_per_read")
    return _median_estimate(values, "s") if values else None


# --------------------------------------------------------------------------- software RDMA

VERBS_OPERATION = {"write": 0.0, "send": 0.0, "read": 1.0}   # the model's operation code: who moves the data
SOFT_PARAMS = {"nic.soft_crc_rate": "bytes/s", "nic.soft_packet_time": "s", "nic.soft_wr_time": "s"}
_NEAR_ZERO_RATE = 1e24                                        # an ICRC that costs nothing (the limit of 1/rate -> 0)


def _between_devices(r: Record) -> bool:
    """A `measure verbs` bandwidth run between two devices of this host (--peer-device: across the
    veth, the path SMB Direct's flows take)."""
    p = r.params
    return p.get("mode") == "bandwidth" and bool(p.get("peer_device")) and not p.get("peer_addr")


def inline_time_estimate(records: list[Record]) -> cal.Estimate | None:
    """nic.soft_inline_time from `measure verbs --events` runs across two devices with >= 2 WRs in
    flight per QP (the SMB Direct serving threads' condition; with one in flight every post finds the
    chain idle, a case of its own): per run, the poster's system time per WR is what it kept of the
    chain, its system time + ksoftirqd's the chain; the runs where ksoftirqd took nothing bound it
    from below only and are left out. Median over the runs, range low..high."""
    from models.resources import inline_time_of
    values = []
    for r in records:
        p, s = r.params, r.summary
        if not r.name.startswith("verbs.") or not p.get("events") or not _between_devices(r) \
                or int(p.get("tx_depth") or 0) < 2:
            continue
        wrs, kept, ksoft = s.get("wrs"), s.get("cpu_system_raw_s"), s.get("cpu_ksoftirqd_s")
        if not s.get("integrity_ok", True) or not wrs or not isinstance(kept, (int, float)) \
                or not isinstance(ksoft, (int, float)):
            continue
        tau = inline_time_of(kept / wrs, (kept + ksoft) / wrs)
        if tau is not None:
            values.append((tau, r.id))
    return _median_estimate(values, "s") if values else None


def verbs_points(records: list[Record]) -> list[tuple[str, float, float, float, str]]:
    """(op, message bytes, kernel CPU s per byte, user CPU s per byte, record id) of bandwidth runs between
    two devices of this host (--peer-device: across the veth, the path SMB Direct's flows take), counted
    by the one CPU accounting (process + ksoftirqd run time: records that carry cpu_ksoftirqd_s; older
    ones sampled softirq from /proc/stat and missed 12-25 % of it, docs/verbs.md). Busy-polling runs
    only: a poster that sleeps on events (--events) leaves its WRs' chains to other tasks at other
    times, a condition of its own (docs/model.md)."""
    out = []
    for r in records:
        s = r.summary
        if not _between_devices(r) or r.params.get("events"):
            continue
        if "cpu_ksoftirqd_s" not in s:
            continue
        kernel = [s.get("cpu_system_s_per_gb"), s.get("cpu_softirq_s_per_gb")]
        if any(not isinstance(v, (int, float)) for v in kernel) or not s.get("integrity_ok", True):
            continue
        out.append((r.params.get("op", "write"), float(r.params["io_size_bytes"]), sum(kernel) / GB,
                    float(s.get("cpu_user_s_per_gb") or 0.0) / GB, r.id))
    return out


def soft_rdma_design(points, scenario, overrides: Mapping[str, float]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The model's kernel CPU per byte of each verbs point (both ends: on loopback they share one
    host) as fixed + one column per software-RDMA figure, each column what a unit of the figure adds
    (the model evaluated at unit values: it is linear in 1/crc rate, t_packet, t_wr)."""
    from models.sweep import evaluate_with_overrides

    def per_byte(extra: Mapping[str, float]) -> np.ndarray:
        out = np.zeros(len(points))
        for k, (op, size, *_rest) in enumerate(points):
            ev = evaluate_with_overrides(scenario, {**overrides, **extra},
                                         grid={"workload.io_size": [size], "workload.operation_code": [VERBS_OPERATION[op]]})
            r = ev.result
            user = ev.table.rdma_wrs_per_io[0] * scenario.platform.cpu.rdma_wr_time \
                if "cpu.rdma_wr_time" not in overrides else ev.table.rdma_wrs_per_io[0] * overrides["cpu.rdma_wr_time"]
            out[k] = r.both_ends_seconds_per_byte[0] - user / size
        return out

    zero = {"nic.soft_crc_rate": _NEAR_ZERO_RATE, "nic.soft_packet_time": 0.0, "nic.soft_wr_time": 0.0}
    fixed = per_byte(zero)
    cols = {"nic.soft_crc_rate": per_byte({**zero, "nic.soft_crc_rate": 1.0}) - fixed,
            "nic.soft_packet_time": per_byte({**zero, "nic.soft_packet_time": 1.0}) - fixed,
            "nic.soft_wr_time": per_byte({**zero, "nic.soft_wr_time": 1.0}) - fixed}
    return cols, fixed


# what posted the WRs of a verbs run (summary.loop): a WR's user-space cost is the poster's
LOOP_NAMES = {"python": "pyverbs from the Python loop", "native": "the compiled C loop over libibverbs"}

# SMB Direct moves its data by RDMA WRITE (SMB2 READ) and RDMA READ (SMB2 WRITE); SEND runs of
# measure verbs cost the receiver more per message than the model's terms hold (in the guest: +65 to
# +180 us per 256 B-4 KiB message), so they are shown against the model but not fitted
FITTED_OPS = ("write", "read")
# relative error past which a run counts less (soft L1): in the TCG guest single runs of large
# messages swing 2-4x with the host's load and rxe's retransmissions (docs/model.md)
ROBUST_SCALE = 0.15


def _median_per_point(pts: list[tuple]) -> list[tuple]:
    """One point per (op, size): the medians of its repetitions (a run disturbed by the host's load
    counts as one of several), citing the first record."""
    by: dict[tuple, list[tuple]] = defaultdict(list)
    for p in pts:
        by[(p[0], p[1])].append(p)
    return [(op, size, float(np.median([q[2] for q in qs])), float(np.median([q[3] for q in qs])),
             ",".join(q[4] for q in qs)) for (op, size), qs in sorted(by.items())]


@dataclass(frozen=True)
class SoftFit:
    fit: cal.Fit                        # per-point relative residuals, rms, max
    figures: dict[str, cal.Estimate]    # nic.soft_crc_rate (bytes/s), nic.soft_packet_time, nic.soft_wr_time
    wr_user: cal.Estimate | None        # cpu.rdma_wr_time: user-space post + reap of one WR (one-packet runs)
    wr_loops: tuple[str, ...] = ()      # which loops posted those runs (summary.loop: python, native)
    points: tuple = ()


def fit_soft_rdma(records: list[Record], scenario, overrides: Mapping[str, float]) -> SoftFit | None:
    """The software NIC's costs from `measure verbs` records: kernel CPU (system + softirq) per byte =
    the model's copies + t_wr per WR + t_packet per packet sent or received at either end + one ICRC
    pass per byte at each end, fitted non-negative on relative errors over sizes and operations. The
    user-space cost of posting and reaping a WR (cpu.rdma_wr_time) comes from the runs of one-packet
    messages, where the posting loop is busy with WRs, not waiting."""
    pts = _median_per_point([p for p in verbs_points(records) if p[0] in FITTED_OPS])
    if len(pts) < 4 or len({p[1] for p in pts}) < 3:
        return None
    cols, fixed = soft_rdma_design(pts, scenario, overrides)
    y = np.array([p[2] for p in pts])
    cols_fit = {"crc_seconds_per_byte": cols["nic.soft_crc_rate"], "packet": cols["nic.soft_packet_time"],
                "wr": cols["nic.soft_wr_time"]}
    fit = cal.fit_nonnegative_linear(cols_fit, fixed, y, [p[4] for p in pts],
                                     {"crc_seconds_per_byte": "s/B", "packet": "s", "wr": "s"},
                                     robust_scale=ROBUST_SCALE)
    every = tuple(sorted({i for p in pts for i in p[4].split(",")}))     # each figure cites every run it rests on
    fit = dataclasses.replace(fit, params={k: dataclasses.replace(e, record_ids=every) for k, e in fit.params.items()})
    crc = fit.params["crc_seconds_per_byte"]
    figures = {
        "nic.soft_crc_rate": cal.Estimate(1.0 / crc.value if crc.value > 0 else float("inf"),
                                          1.0 / crc.high if crc.high > 0 else float("nan"),
                                          1.0 / crc.low if crc.low > 0 else float("inf"), "bytes/s", crc.record_ids),
        "nic.soft_packet_time": fit.params["packet"], "nic.soft_wr_time": fit.params["wr"]}
    pmtu = float(scenario.link.mtu)
    small = [(p[3] * p[1], i) for p in pts if p[1] <= 1024 and p[3] > 0 and pmtu for i in p[4].split(",")[:1]]
    wr_user = _median_estimate(small, "s") if small else None
    by_id = {r.id: r for r in records}
    loops = tuple(sorted({str(by_id[i].summary.get("loop") or "python") for _, i in small if i in by_id}))
    return SoftFit(fit=fit, figures=figures, wr_user=wr_user, points=tuple(pts), wr_loops=loops)


# --------------------------------------------------------------------------- fits -> figures

@dataclass(frozen=True)
class PlaceFit:
    place: Place
    copy: cal.Fit                       # the copy law over one-copier memcpy timings
    paths: dict[str, cal.Fit] = field(default_factory=dict)   # per socket path: sender per byte + per call
    syscall: cal.Estimate | None = None                       # per-call costs pooled over the paths
    syscall_paths: tuple[str, ...] = ()
    stack_unit: cal.Estimate | None = None                    # sender CPU per 64 KiB unit on loopback (sendfile)
    receiver: cal.Fit | None = None                           # receiver per byte + per call (all paths)
    dram: cal.Estimate | None = None                          # all-core copy rate x 3, when measured
    extra: dict[str, cal.Estimate] = field(default_factory=dict)   # fault, pin, page copy, checksum figures
    csum_paths: dict[str, float] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)     # how an extra figure was obtained, where it varies
    soft: SoftFit | None = None
    mrreg: cal.Fit | None = None                              # copy.mrreg: per registration + per page
    request: ExchangeCpu | None = None                        # proto.smbd: each end's CPU per exchange


def fit_place(place: Place, records: list[Record]) -> PlaceFit:
    """Every part the place's records measure; the copy law is required (the rest is optional)."""
    try:
        copy_fit = cal.fit_copy_rates(memcpy_points(of_kind(records, "copy.memcpy")))
    except ValueError as exc:
        raise InputError(f"cannot fit the copy law from the records of {place.label}: {exc}",
                         "run `rdmarig measure copy --probe memcpy` with sizes 64KiB..128MiB there") from None
    sockets = of_kind(records, "copy.socket")
    path_fits: dict[str, cal.Fit] = {}
    for path, pts in sorted(socket_points(sockets, "tx").items()):
        try:
            path_fits[path] = cal.fit_per_call_costs(pts)
        except ValueError:
            continue
    per_call = {p: f.params["per_call_seconds"] for p, f in path_fits.items()
                if np.isfinite(f.params["per_call_seconds"].high)}
    syscall = cal.pooled(list(per_call.values()), "s/call") if per_call else None
    unit = None
    if "sendfile" in path_fits:
        sf = path_fits["sendfile"].params["per_byte_seconds"]
        unit = cal.Estimate(sf.value * GSO_BYTES, sf.low * GSO_BYTES, sf.high * GSO_BYTES, "s", sf.record_ids)
    rx_pts = [pt for pts in socket_points(sockets, "rx").values() for pt in pts]
    receiver = None
    if len(rx_pts) >= 3:
        try:
            receiver = cal.fit_per_call_costs(rx_pts)
        except ValueError:
            receiver = None
    extra = {**fault_estimates(of_kind(records, "copy.fault")), **pin_estimates(of_kind(records, "copy.pin"))}
    methods = {}
    pc = pagecopy_estimate(of_kind(records, "copy.pagecopy"), copy_fit.params["copy_rate_dram"].value)
    if pc is not None:
        extra["cpu.copy_page_time"], methods["cpu.copy_page_time"] = pc
    # the cpu-copy server's own pread, where measured, gives the step per page in its stead
    for key, (estimate, how) in pread_estimates(of_kind(records, "copy.pread"),
                                                copy_fit.params["copy_rate_dram"].value).items():
        extra[key], methods[key] = estimate, how
    csum = csum_estimate(of_kind(records, "copy.csum"))
    if csum is not None:
        extra["cpu.tcp_checksum_rate"] = csum[0]
    crc = crc32_estimate(of_kind(records, "copy.crc32"))
    if crc is not None:
        extra["cpu.crc32_rate"] = crc
    handoff = handoff_estimate(of_kind(records, "copy.handoff"))
    if handoff is not None:
        extra["cpu.async_handoff_time"] = handoff
    inline = inline_time_estimate(records)
    if inline is not None:
        extra["nic.soft_inline_time"] = inline
    mrreg = mrreg_fit(of_kind(records, "copy.mrreg"))
    return PlaceFit(place=place, copy=copy_fit, paths=path_fits, syscall=syscall,
                    syscall_paths=tuple(sorted(per_call)), stack_unit=unit, receiver=receiver,
                    dram=dram_estimate(of_kind(records, "copy.memcpy")), extra=extra,
                    csum_paths=csum[1] if csum else {}, methods=methods, mrreg=mrreg,
                    request=request_estimate(of_kind(records, "proto.smbd")))


def measured_figures(fit: PlaceFit, base: Platform) -> dict[str, Measured]:
    """The platform figures the fits measure, each with its interval, method and record ids."""
    quality = f" (fit rms relative error {fit.copy.rms_relative_error:.1%} over {fit.copy.n_points} timings)"
    where = f" in {fit.place.label}"
    out = {}
    for key, what in (("copy_rate_cache", "copy law fit of one-copier memcpy timings"),
                      ("copy_rate_dram", "copy law fit of one-copier memcpy timings"),
                      ("cache_per_core", "copy law fit: buffer size where copies leave the cache regime")):
        out[f"cpu.{key}"] = _figure(f"cpu.{key}", fit.copy.params[key], f"{BY}, {what}{where}{quality}")
    if fit.syscall is not None:
        out["cpu.syscall_time"] = _figure(
            "cpu.syscall_time", fit.syscall,
            f"{BY}, per-call sender CPU pooled over the paths {', '.join(fit.syscall_paths)}{where} "
            "(includes the per-call socket work, not only entry/exit)")
    if fit.stack_unit is not None:
        # on loopback the sender's core runs a 64 KiB unit's send, the receive softirq it triggers and the
        # ACKs it gets back; only their sum is measured here: it is split as the base splits it
        c = base.cpu
        total = c.tcp_segment_time + c.tcp_receive_time + c.tcp_ack_time
        for key in ("tcp_segment_time", "tcp_receive_time", "tcp_ack_time"):
            share = getattr(c, key) / total
            e = fit.stack_unit
            out[f"cpu.{key}"] = _figure(
                f"cpu.{key}", cal.Estimate(e.value * share, e.low * share, e.high * share, "s", e.record_ids),
                f"{BY}, sendfile's per-byte sender CPU on loopback x 64 KiB (one GSO unit: its send, the receive "
                f"softirq lo runs on the sending core, the ACKs back){where}, {share:.0%} of it as {base.name} "
                "splits segment / receive / ACK (loopback measures their sum)")
    if fit.receiver is not None:
        b = fit.receiver.params["per_byte_seconds"]
        if b.value > 0:
            out["cpu.copy_rate_cross_core"] = _figure(
                "cpu.copy_rate_cross_core",
                cal.Estimate(1.0 / b.value, 1.0 / b.high if b.high > 0 else float("nan"),
                             1.0 / b.low if b.low > 0 else float("inf"), "bytes/s", b.record_ids),
                f"{BY}, the loopback receiver's per-byte CPU (recv_into: the copy out of skbs the sender's core "
                f"just wrote), per-call cost fitted apart, all paths{where}")
    for key, e in fit.extra.items():
        if key.startswith("nic.soft_") and base.nic.rdma != "software":
            continue        # a software NIC's figure: a hardware NIC's profile holds none
        how = fit.methods.get(key, _EXTRA_METHOD[key])
        out[key] = _figure(key, e, f"{BY}, {how}{where}", interval="range over the repetitions")
    if fit.dram is not None:
        out["memory.dram_bandwidth"] = _figure(
            "memory.dram_bandwidth", fit.dram,
            f"{BY}, all cores copying DRAM-sized buffers, copy rate x 3 (read + write + write-allocate){where}; "
            "a lower bound of what the memory sustains", interval="range over the repetitions")
    if fit.soft is not None:
        q = f" (fit rms relative error {fit.soft.fit.rms_relative_error:.1%} over {fit.soft.fit.n_points} runs)"
        for key, e in fit.soft.figures.items():
            if np.isfinite(e.value) and e.value > 0:
                out[key] = _figure(key, e, f"{BY}, measure verbs between two soft-RoCE devices{where}: kernel CPU "
                                           "(system + softirq) per byte fitted with the model's software-RDMA terms "
                                           f"(per packet at each end, one ICRC pass per byte at each end, per WR){q}")
        if fit.soft.wr_user is not None and fit.soft.wr_user.value > 0:
            out["cpu.rdma_wr_time"] = _figure(
                "cpu.rdma_wr_time", fit.soft.wr_user,
                f"{BY}, user CPU per message of measure verbs runs of one packet (post + completion poll, "
                f"{' and '.join(LOOP_NAMES.get(x, x) for x in fit.soft.wr_loops) or 'the Python loop'}){where}",
                interval="range over the runs")
    if fit.mrreg is not None:
        a, b = fit.mrreg.params["per_call_seconds"], fit.mrreg.params["per_byte_seconds"]
        out["cpu.mr_register_time"] = _figure(
            "cpu.mr_register_time", a,
            f"{BY}, copy.mrreg: ibv_reg_mr + ibv_dereg_mr of a read-only file mapping over the sizes, CPU per "
            f"registration = a + b x pages, a (b = {b.value * 1e6:.2f} us per 4 KiB page: pinning and the device's "
            f"page map; the model charges pages as pins){where} (fit rms relative error "
            f"{fit.mrreg.rms_relative_error:.1%} over {fit.mrreg.n_points} timings)")
    if fit.request is not None:
        request = request_time_estimate(fit.request, out, base)
        if request is not None:
            ends, wr, send = request
            exchange = ("with a one-packet data WR (an RDMA WRITE of the named buffer) before the response"
                        if fit.request.data_wrs else "without bulk data") \
                + (", through the flows' serving and client loops" if fit.request.flows_loops else "")
            apart = {"server": f"one cpu.rdma_wr_time (the response SEND's post + reap, {wr * 1e6:.1f} us)"
                               + (", and for its data WR one more and that WR's one-packet chain"
                                  if fit.request.data_wrs else ""),
                     "client": "two cpu.rdma_wr_time (its request SEND and a RECV)"}
            for key, end in (("cpu.smb_request_time", "server"), ("cpu.smb_client_time", "client")):
                if ends[end] is None:
                    continue
                out[key] = _figure(
                    key, ends[end],
                    f"{BY}, proto.smbd: the {end}'s CPU (user + system) per SMB2 READ request/response exchange "
                    f"{exchange} (the deepest depth measured), less what the model charges it apart - "
                    f"{apart[end]} and its one-packet SEND's soft-RoCE chain ({send * 1e6:.1f} us: "
                    f"nic.soft_wr_time + 4 x nic.soft_packet_time){where}",
                    interval="range over the repetitions")
    return out


def request_time_estimate(x: ExchangeCpu, out: Mapping[str, Measured], base: Platform
                          ) -> tuple[dict[str, cal.Estimate | None], float, float] | None:
    """cpu.smb_request_time (the server's) and cpu.smb_client_time (the client's) from proto.smbd: per
    repetition, the end's CPU per exchange less the terms the model charges that end apart
    (work-request posts and reaps; on loopback the one-packet WRs it initiates: each WR in the kernel,
    its packet sent and received, the ACK back). Returns ({"server": estimate, "client": estimate},
    rdma_wr_time, one one-packet WR's chain), an end None when nothing is left of it, or None when
    nothing is left of either."""
    figure = lambda key, default: out[key].value if key in out else default  # noqa: E731
    wr = figure("cpu.rdma_wr_time", base.cpu.rdma_wr_time)
    send = figure("nic.soft_wr_time", base.nic.soft_wr_time) + 4.0 * figure("nic.soft_packet_time",
                                                                            base.nic.soft_packet_time)
    apart = {"server": (1 + x.data_wrs) * (wr + send), "client": 2.0 * wr + send}
    ends: dict[str, cal.Estimate | None] = {}
    for end, samples in (("server", x.server), ("client", x.client)):
        e = _median_estimate([(v - apart[end], i) for v, i in samples], "s")
        ends[end] = dataclasses.replace(e, low=max(e.low, 0.0)) if e.value > 0 else None
    if not any(ends.values()):
        return None
    return ends, wr, send


_POSTING_METHOD = ("copy.pread with the copying thread posting a soft-RoCE WRITE chain of the I/O size at the "
                   "whole's depth (each pread's buffer written after it) against alone: (CPU per byte posting - "
                   "alone) / alone, per size")
_EXTRA_METHOD = {
    "nic.soft_inline_time": "measure verbs --events (a poster sleeping on completion events, two soft-RoCE "
                            "devices, >= 2 WRs in flight per QP): per WR, the process's kernel time kept of the "
                            "chain (its system time) against the whole chain (+ ksoftirqd's run time), solved for "
                            "the mean of a memoryless hand-over, kept = t (1 - exp(-chain / t)), per run",
    "cpu.page_fault_time": "copy.fault: t per page = a + page bytes / zero rate through the 4 KiB and THP kinds",
    "cpu.page_zero_rate": "copy.fault: t per page = a + page bytes / zero rate through the 4 KiB and THP kinds",
    "cpu.unmap_page_time": "copy.fault: unmap CPU per 4 KiB page of the populated mapping",
    "cpu.pin_page_time": "copy.pin io_uring registration: per 4 KiB page with 4 KiB pages and with THP (t = a + b, "
                         "t = a + b / 512)",
    "cpu.pin_folio_time": "copy.pin io_uring registration: per 4 KiB page with 4 KiB pages and with THP (t = a + b, "
                          "t = a + b / 512)",
    "cpu.copy_page_time": "copy.pagecopy: the per-page step of a tmpfs read",
    "nic.soft_copy_absorption": "copy.pread beside a soft-RoCE WRITE chain of the I/O size (its poster sleeping on "
                                "events) against alone: (CPU per byte beside - alone) / alone, per size",
    "cpu.tcp_checksum_rate": "copy.csum: the sender's extra CPU per byte with checksum offload off on the veth",
    "cpu.crc32_rate": "copy.crc32: CPU per byte of zlib.crc32 over page-aligned buffers (the smbd client's check), "
                      "over the sizes",
    "cpu.async_handoff_time": "copy.handoff: the process's CPU per io_uring READ with IOSQE_ASYNC (its io-wq workers "
                              "included, the submitter's wait for completions left out) less a pread of the "
                              "same 64 B of a tmpfs file, over the READs in flight measured",
}


def _figure(key: str, e: cal.Estimate, method: str, interval: str = "95% fit interval") -> Measured:
    return measured_figure(key, e.value, e.record_ids, method, interval, e.low, e.high)


# --------------------------------------------------------------------------- the measured side

@dataclass(frozen=True)
class MeasuredPoint:
    gbytes_per_s: float                 # median over the stored repetitions
    cpu_s_per_gb: float                 # sender user + system + softirq, median
    foreign_cpu_per_s: float            # other tenants' load while it ran, median (nan: unknown)
    records: int
    receiver_cpu_s_per_gb: float = float("nan")


def measured_side(records: list[Record]) -> dict[tuple[str, int], MeasuredPoint]:
    """{(path, chunk bytes): what the loopback tmpfs socket records measured}."""
    by_point: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for r in records:
        if _loopback_tmpfs(r):
            by_point[(r.params["path"], int(r.params["io_size_bytes"]))].append(r)
    out = {}
    for key, recs in sorted(by_point.items()):
        gbps = [v for r in recs for v in r.samples["gbytes_per_s"] if v]
        n = lambda r: len(r.samples["gbytes_per_s"])  # noqa: E731
        tx = [c for r in recs for i in range(n(r)) if (c := _side_cpu_s_per_gb(r, "tx", i)) is not None]
        rx = [c for r in recs for i in range(n(r)) if (c := _side_cpu_s_per_gb(r, "rx", i)) is not None]
        foreign = [v for r in recs for v in r.samples.get("foreign_cpu_per_s", []) if v is not None]
        out[key] = MeasuredPoint(_median(gbps), _median(tx), _median(foreign), len(recs), _median(rx))
    return out


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


# --------------------------------------------------------------------------- a new profile of the place

def choose_base(platforms: Mapping[str, Platform], host_cpu: str | None = None,
                software_rdma: bool = False) -> tuple[str, str]:
    """(name of the built-in profile a new profile builds on, why that one): for a place whose RDMA
    runs in software, a built-in whose NIC does too; else the one whose CPU shares the most words
    with the place's CPU model ('AMD EPYC' -> an EPYC profile)."""
    if not platforms:
        raise InputError("there is no platform profile to build on", "pass --base PROFILE")
    cpu = host_cpu if host_cpu is not None else (cpu_model() or "")
    words = {w.lower() for w in cpu.split() if len(w) > 2}

    def shared(p: Platform) -> int:
        return len(words & {w.lower().strip("()") for w in p.cpu.model.split()})

    if software_rdma:
        soft = {n: p for n, p in platforms.items() if p.nic.rdma == "software" and not p.measured}
        if soft:
            name = sorted(soft)[0]
            return name, (f"the place runs RDMA in software (soft-RoCE) and {name} is the built-in profile of it; "
                          "the figures the place's probes cannot measure come from it")
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


def place_profile(base: Platform, place: Place, records: Sequence[Record]) -> dict[str, Any]:
    """What a new profile says of its place beside its base: the figures read from the place itself
    (this host, or the guest's records' provenance; not fitted), those where loopback stands in for
    the NIC, and whether it has DMA engines. {"description", "own": {"cpu": [(key, value, source)], ...},
    "no_dma_because", "dma_engines"}."""
    if place.is_guest:
        prov = records[-1].provenance if records else {}
        cores, cores_source = int(prov.get("cpu_count") or 1), \
            f"provenance cpu_count of the guest's records ({place.label})"
        mem = prov.get("mem_total_bytes") or 0
        cpu_name, clock_hz, engines = place.cpu or "unknown", None, []
        what = "the soft-RoCE guest"
    else:
        cores, cores_source = os.cpu_count() or 1, "os.cpu_count() on this host at calibration time"
        mem, cpu_name, clock_hz, engines = mem_total_bytes() or 0, cpu_model() or "unknown", _clock_hz(), _dma_engines()
        what = "this host"
    own: dict[str, list[tuple[str, Any, str | None]]] = {
        "cpu": [("model", cpu_name, None),
                ("cores", cores, cores_source),
                ("sockets", 1, f"assumption: {what} shows one NUMA node to the probes"),
                ("tcp_checksum_rate", quantity_text(base.cpu.tcp_checksum_rate, "bytes/s"),
                 f"assumption: loopback has checksums fixed on (ethtool -k lo), so the copy probes cannot measure "
                 f"it without the csum probe; the base's figure ({base.name})")],
        "memory": [("description", f"{mem / 2**30:.0f} GiB as seen by {what}", None),
                   ("dram_peak", quantity_text(base.memory.dram_peak, "bytes/s"),
                    f"assumption: the channel layout is not visible here; the base's datasheet peak "
                    f"({base.name}) stands as an upper bound")],
    }
    if base.nic.rdma != "software":
        own["nic"] = [("model", "loopback (lo)", None),
                      ("ports", 1, "assumption: loopback stands in for the NIC; one interface"),
                      ("port_rate", "200Gbit/s", "assumption: loopback has no line rate; 25 GB/s is above every path "
                                                 "measured here, so the link never binds")]
        own["pcie"] = [("generation", 5, "assumption: loopback has no PCIe; Gen5 x16 so it never binds"),
                       ("lanes", 16, "assumption: loopback has no PCIe; Gen5 x16 so it never binds")] + \
            [(key, quantity_text(getattr(base.nic.pcie, key), "bytes"),
              f"assumption: loopback has no PCIe; the base's figure ({base.name}), it never binds")
             for key in ("max_payload", "tlp_overhead", "read_completion")]
    own["cpu"].append(("clock", quantity_text(clock_hz, "Hz"), "/proc/cpuinfo cpu MHz at calibration time")
                      if clock_hz is not None else
                      ("clock", quantity_text(base.cpu.clock_hz, "Hz"),
                       f"assumption: no cpu MHz is known for {what}; the base's clock ({base.name}) stands in "
                       "(the copy fits do not use it)"))
    return {"description": f"{what}, calibrated from its records ({place.label})",
            "own": own,
            "no_dma_because": "" if engines else f"no [[dma]]: /sys/class/dma is empty on {what} (no DMA-engine drivers)",
            "dma_engines": engines}


# --------------------------------------------------------------------------- SMB Direct: the whole

@dataclass(frozen=True)
class SmbdConfig:
    """One measured point of `measure smbd`, as the scenario's copy path and workload fields."""
    op: str                             # read | write
    io_size: float
    path: str                           # copy path of smbdirect-this-host (copy variant + registration)
    connections: int
    credits: int                        # I/Os in flight per connection
    workers: int                        # io-wq cap (0: none)
    register: str = "once"              # the client's registration: once | per-io
    clients: int = 1                    # client hosts served at once (an MPI incast: ranks - 1)
    incast: bool = False                # the aggregate of an MPI incast run (the server's total throughput)
    serving_cpus: tuple[tuple[int, ...], ...] = ()   # each serving process's CPUs as pinned; (): unpinned


def smbd_path(copy: str, register: str) -> str:
    """The copy path a `measure smbd --copy C --register R` run is: zero-copy registered per I/O is its own."""
    return "zero-copy-per-io" if copy == "zero-copy" and register == "per-io" else copy


def smbd_config(r: Record) -> SmbdConfig | None:
    p = r.params
    try:
        return SmbdConfig(op=str(p["op"]), io_size=float(p["io_size_bytes"]),
                          path=smbd_path(str(p["copy"]), str(p.get("register", "once"))),
                          connections=int(p["connections"]), credits=int(p["ios_in_flight_per_connection"]),
                          workers=int(p.get("async_workers_max") or 0), register=str(p.get("register", "once")),
                          clients=int(p["ranks"]) - 1 if r.name in INCAST_NAMES else 1, incast=r.name in INCAST_NAMES,
                          serving_cpus=pinned_sets(p.get("serving_cpus")))
    except (KeyError, TypeError, ValueError):
        return None


def pinned_sets(serving_cpus: object) -> tuple[tuple[int, ...], ...]:
    """A record's serving_cpus ([[1], [0]]: each serving process's CPUs, as the server pinned them)
    as a configuration's key; () for a run whose serving processes the scheduler placed."""
    if not isinstance(serving_cpus, list) or not all(isinstance(cpus, list) for cpus in serving_cpus):
        return ()
    return tuple(tuple(int(c) for c in cpus) for cpus in serving_cpus)


def pinned_label(sets: tuple[tuple[int, ...], ...]) -> str:
    """Pinned CPU sets as one table cell, connection by connection ("1/0"); "" unpinned."""
    return "/".join(",".join(map(str, cpus)) for cpus in sets)


def pinned_cores(sets: tuple[tuple[int, ...], ...]) -> int:
    """The cores the serving processes were pinned to, one CPU each (0: unpinned, or a process
    allowed several CPUs, which the scheduler then places)."""
    if not sets or any(len(cpus) != 1 for cpus in sets):
        return 0
    return len({cpus[0] for cpus in sets})


INCAST_NAMES = ("mpi.smbd.read", "mpi.smbd.write")     # the aggregate of a `measure smbd --mpi` run


def smbd_records(records: Iterable[Record]) -> list[Record]:
    """Complete measurements only: integrity checked, not cut short; single runs (the pairs of an MPI
    run share the host with the run's other pairs) and the aggregates of MPI incast runs (rank 0
    serving ranks - 1 clients: the server's total), complete, with every pair measured."""
    out = []
    for r in records:
        if r.kind != "measured" or smbd_config(r) is None:
            continue
        if r.name in ("smbd.read", "smbd.write"):
            if r.summary.get("integrity_ok") is True and not r.summary.get("partial") and not is_mpi_pair(r):
                out.append(r)
        elif r.name in INCAST_NAMES and r.params.get("pattern") == "incast" and r.summary.get("complete") is True \
                and isinstance(r.summary.get("aggregate_gbytes_per_s"), (int, float)):
            out.append(r)
    return out


@dataclass(frozen=True)
class SmbdMeasured:
    gbytes_per_s: float
    server_cpu_s_per_gb: float
    client_cpu_s_per_gb: float
    foreign_cpu_per_s: float
    records: tuple[str, ...]
    # both ends in one kernel: what ksoftirqd and rxe's kworkers ran (inside client_cpu_s_per_gb, the
    # records' cpu_scope); None where the ends had kernels of their own
    softirq_cpu_s_per_gb: float | None = None
    # how far the rounds at this point lie apart: (max - min) / median in %, None under two rounds
    gbps_spread_pct: float | None = None
    server_cpu_spread_pct: float | None = None
    # executed vCPU seconds per guest busy second while it ran (rig.executed_time), median; None: not known
    executed_fraction: float | None = None
    # the host's steal share while its records ran (guest records' provenance host_cpu_under_guest), median
    host_steal_fraction: float | None = None


def spread_pct(values: list[float]) -> float | None:
    """(max - min) / median of repeated measurements, in %: None under two or with a zero median."""
    if len(values) < 2:
        return None
    mid = _median(values)
    return (max(values) - min(values)) / mid * 100.0 if mid else None


def one_kernel(r: Record) -> bool:
    """An smbd record with both ends in one kernel (its cpu_scope says so)."""
    return str(r.summary.get("cpu_scope", "")).startswith("one kernel")


def _outside_both_ends(r: Record) -> float | None:
    """A one-kernel smbd record's CPU that ran in neither end's processes (ksoftirqd, rxe kworkers),
    where it was counted once (counted_cpu_per_s: the one-kernel accounting of 2026-12-01)."""
    s = r.summary
    if not one_kernel(r) or "counted_cpu_per_s" not in s:
        return None
    parts = [s.get("client_softirq_cpu_s_per_gb"), s.get("client_rxe_kworker_cpu_s_per_gb", 0.0)]
    return float(sum(parts)) if all(isinstance(x, (int, float)) for x in parts) else None


def smbd_measured(records: list[Record]) -> dict[SmbdConfig, SmbdMeasured]:
    """{configuration: medians of the smbd records measured at it}: the measured columns only."""
    by: dict[SmbdConfig, list[Record]] = defaultdict(list)
    for r in smbd_records(records):
        by[smbd_config(r)].append(r)
    out = {}
    for cfg, recs in by.items():
        values = lambda key: [float(r.summary[key]) for r in recs  # noqa: E731
                              if isinstance(r.summary.get(key), (int, float))]
        med = lambda key: _median(values(key))  # noqa: E731
        # an incast aggregate holds the server's total throughput, not its CPU
        rate_key = "aggregate_gbytes_per_s" if cfg.incast else "gbytes_per_s"
        outside = [x for x in map(_outside_both_ends, recs) if x is not None]
        shares = [x for x in map(executed_fraction, recs) if x is not None]
        steal = [x for x in map(host_steal_fraction, recs) if x is not None]
        out[cfg] = SmbdMeasured(med(rate_key), med("server_cpu_s_per_gb"), med("client_cpu_s_per_gb"),
                                foreign_load(recs)[0], tuple(r.id for r in recs),
                                _median(outside) if outside and not cfg.incast else None,
                                spread_pct(values(rate_key)),
                                None if cfg.incast else spread_pct(values("server_cpu_s_per_gb")),
                                _median(shares) if shares else None, _median(steal) if steal else None)
    return out


def scenario_configs(s) -> list[SmbdConfig]:
    """The scenario's own points (its copy paths x I/O sizes at its workload) as configurations."""
    w = s.workload
    def register(path: str) -> str:
        # zero-copy-per-io is what `measure smbd --copy zero-copy --register per-io` runs (smbd_path):
        # its client registers per I/O too
        return "per-io" if w.client_registers_per_io or path == smbd_path("zero-copy", "per-io") else "once"
    return [SmbdConfig(w.operation, float(size), p.name, w.connections, w.outstanding_per_connection, w.async_workers,
                       register(p.name)) for p in s.copy_paths for size in s.sweep.io_sizes]


@dataclass(frozen=True)
class SmbdPredicted:
    gbytes_per_s: float
    server_cpu_s_per_gb: float
    client_cpu_s_per_gb: float
    binding: str
    softirq_cpu_s_per_gb: float = 0.0   # loopback: what ksoftirqd runs (neither end's threads)


def smbd_predicted(s, configs: Iterable[SmbdConfig],
                   executed: Mapping[SmbdConfig, float] | None = None) -> dict[SmbdConfig, SmbdPredicted]:
    """The model's figures at each configuration: the scenario on its (calibrated) platform with the
    configuration's op, connections (one serving and one client thread each), credits and io-wq cap.
    Nothing here reads a measured figure: the predictions rest on the platform's figures alone.
    `executed` {configuration: share}: evaluate those configurations (only) with their cores running
    that share of the time (the vCPU time an emulator executed while the point ran: a condition of the
    measurement, as other tenants' load is; the rest of each core's time is added to `foreign_load`;
    one socket's cores, as the guest has)."""
    from models import report
    from models.sweep import evaluate_grid
    from scenarios.schema import OPERATIONS, with_params

    names = [p.name for p in s.copy_paths]
    groups: dict[tuple, list[SmbdConfig]] = defaultdict(list)
    for c in configs:
        if executed is not None and c not in executed:
            continue
        share = executed[c] if executed is not None else None
        groups[(c.op, c.path, c.connections, c.credits, c.workers, c.register, c.clients, pinned_cores(c.serving_cpus),
                share)].append(c)
    out = {}
    for (op, path, conns, credits, workers, register, clients, pinned, share), cs in groups.items():
        if path not in names:
            continue
        patched = with_params(s, {"workload.connections": conns, "workload.outstanding_per_connection": credits,
                                  # one serving process per connection, every client's (an incast's
                                  # sessions each fork their own); each client host runs its own
                                  # (pinned: the cores they were pinned to)
                                  "workload.io_cores": min(conns * clients, pinned) if pinned else conns * clients,
                                  "workload.client_cores": conns,
                                  "workload.async_workers": workers or s.workload.async_workers,
                                  "workload.client_registers_per_io": float(register == "per-io"),
                                  "workload.clients": clients, "workload.serving_pinned_cores": pinned,
                                  **({"workload.foreign_load": s.workload.foreign_load
                                      + s.platform.cpu.cores * (1.0 - min(share, 1.0))}
                                     if share is not None else {})})
        sizes = sorted({c.io_size for c in cs})
        ev = evaluate_grid(patched, {"workload.io_size": sizes, "workload.operation_code": [OPERATIONS.index(op)]},
                           paths=[names.index(path)])
        rows = report.rows(ev)
        softirq = (ev.result.host_softirq_seconds_per_io / ev.result.io_size * GB).ravel().tolist()
        for c in cs:
            i = sizes.index(c.io_size)
            row = rows[i]
            out[c] = SmbdPredicted(row["throughput_bytes_per_s"] / GB, row["cpu_s_per_gb"], row["client_cpu_s_per_gb"],
                                   row["binding"], softirq[i])
    return out


def profile_places(p: Platform, records: Iterable[Record]) -> set[Place]:
    """The places of the records a profile's measured figures cite (found in `records`)."""
    cited = {i for m in p.measured.values() for i in m.records}
    return {place_of(r) for r in records if r.id in cited}
