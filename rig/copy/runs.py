"""Sweeps of the copy probes, turned into records and stored one by one as each completes.

`memcpy_sweep` and `socket_sweep` are generators: they yield one `Outcome` per configuration (a
stored record, or a skip with its reason), so the caller shows progress and an interrupted sweep
keeps every record already yielded.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from results import stats
from results.record import Record
from results.store import Store
from rig import records
from rig import accounting as acct
from rig.copy import memcpy, netns, senders, sources, transfer
from scenarios.errors import InputError
from scenarios.units import MiB

VIAS = ("loopback", "veth")
MAX_MEMCPY_BYTES = 1 << 30
MAX_CHUNK_BYTES = 256 << 20
SOURCE_MIN_BYTES = 64 << 20     # larger than the last-level cache: file data comes from DRAM
WARMUP_S = 0.2


@dataclass
class Outcome:
    what: str
    record: Record | None = None
    skipped: str | None = None
    row: dict = field(default_factory=dict)


def check_sizes(sizes: list[float], what: str, limit: int) -> list[int]:
    out = []
    for s in sizes:
        if s != int(s) or s < 1:
            raise InputError(f"{what} {s!r} is not a whole number of bytes >= 1", "write sizes like 4KiB or 1MiB")
        if s > limit:
            raise InputError(f"{what} {int(s)} bytes is larger than this probe allows ({limit} bytes)",
                             f"use sizes up to {limit // MiB} MiB")
        out.append(int(s))
    return out


def _summary(samples: dict[str, list[float]], main: str, label: str) -> dict:
    summary: dict = {}
    values = [v for v in samples[main] if v is not None]
    if values:
        summary.update(stats.summarize(values).as_dict(main))
        summary["stability_warning"] = stats.stability_warning(values, label)
    for key, series in samples.items():
        clean = [v for v in series if v is not None and np.isfinite(v)]
        if key != main and clean:
            summary[f"median_{key}"] = float(np.median(clean))
    return summary


# --------------------------------------------------------------------------- memcpy

def memcpy_sweep(sizes: list[int], processes: list[int], repetitions: int,
                 store: Store | None) -> Iterator[Outcome]:
    overhead = memcpy.call_overhead_s()
    pids = acct.ksoftirqd_pids()
    ncpu = len(os.sched_getaffinity(0))
    for size in sizes:
        count, alignment = memcpy.calibrate_count(size)
        for procs in processes:
            what = f"memcpy {size} B x{procs}"
            if size * 2 * procs > _available_bytes() * 0.8:
                yield Outcome(what, skipped=f"{procs} x 2 x {size} bytes do not fit in available memory")
                continue
            before, children0 = acct.HostSnapshot.now(pids), acct.Rusage.children()
            wall0 = time.perf_counter()
            try:
                timings = memcpy.measure(size, procs, repetitions, count)
            except RuntimeError as exc:  # a copier died (e.g. out of memory): skip with the reason
                yield Outcome(what, skipped=str(exc))
                continue
            wall = time.perf_counter() - wall0
            delta = acct.host_delta(before, acct.HostSnapshot.now(pids))
            noise = acct.foreign_cpu_per_s(delta, [acct.Rusage.children() - children0], wall)
            total = [t.total_gbytes_per_s for t in timings]
            per_core = [t.per_core_gbytes_per_s for t in timings]
            per_copy_s = [max(t.per_process_s) / t.copies_per_process for t in timings]
            corrected = [size / (s - overhead) / 1e9 if s > 2 * overhead else None for s in per_copy_s]
            per_copy_cpu_s = [float(np.mean(t.per_process_cpu_s)) / t.copies_per_process for t in timings]
            cpu_corrected = [size / (s - overhead) / 1e9 if s > 2 * overhead else None for s in per_copy_cpu_s]
            # all or nothing: keeping only the repetitions long enough to correct would favour slow ones
            if None in corrected:
                corrected = [None] * len(corrected)
            if None in cpu_corrected:
                cpu_corrected = [None] * len(cpu_corrected)
            samples = {"total_gbytes_per_s": total, "per_core_gbytes_per_s": per_core,
                       "per_cpu_second_gbytes_per_s": [t.per_cpu_second_gbytes_per_s for t in timings],
                       "call_corrected_per_cpu_second_gbytes_per_s": cpu_corrected,
                       "wall_s": [t.wall_s for t in timings], "seconds_per_copy": per_copy_s,
                       "call_corrected_per_core_gbytes_per_s": corrected}
            summary = _summary(samples, "total_gbytes_per_s", f"memcpy {size} B x{procs}")
            summary["call_overhead_s"] = overhead
            summary.update(noise)
            _noise_warning(summary, noise["foreign_cpu_per_s"])
            params = {"io_size_bytes": size, "processes": procs, "copies_per_timing": count,
                      "min_timing_s": memcpy.MIN_TIMING_S, "repetitions": repetitions,
                      "pinned": procs <= ncpu, "copy_function": "glibc memmove via ctypes"}
            record = records.store_record(records.measured_record(
                "copy.memcpy", params, samples, summary, extra_provenance={"buffers": alignment}), store)
            yield Outcome(what, record=record, row=_memcpy_row(record))


def _noise_warning(summary: dict, foreign_cpu_per_s: float | None) -> None:
    if foreign_cpu_per_s is not None and foreign_cpu_per_s > acct.FOREIGN_CPU_WARN_PER_S:
        summary["noise_warning"] = (f"other work used {foreign_cpu_per_s:.2f} CPU-s per second during "
                                    f"the runs (> {acct.FOREIGN_CPU_WARN_PER_S}); figures may be low")


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 30


def _memcpy_row(record: Record) -> dict:
    p, s = record.params, record.summary
    return {"id": record.id[:8], "io_size_bytes": p["io_size_bytes"], "processes": p["processes"],
            "total_gbytes_per_s": s.get("median_total_gbytes_per_s"),
            "per_core_gbytes_per_s": s.get("median_per_core_gbytes_per_s"),
            "corrected_gbytes_per_s": s.get("median_call_corrected_per_core_gbytes_per_s"),
            "per_cpu_second_gbytes_per_s": s.get("median_per_cpu_second_gbytes_per_s"),
            "cv": s.get("cv"), "foreign_cpu_per_s": s.get("foreign_cpu_per_s"),
            "warning": ", ".join(w for k, w in (("stability_warning", "unstable"), ("noise_warning", "noisy host"))
                                 if s.get(k))}


# --------------------------------------------------------------------------- sockets

_SPLIT_KEYS = ("gbytes_per_s", "tx_user_cpu_s_per_gb", "tx_system_cpu_s_per_gb", "tx_softirq_cpu_s_per_gb",
               "rx_user_cpu_s_per_gb", "rx_system_cpu_s_per_gb", "rx_softirq_cpu_s_per_gb",
               "total_cpu_s_per_gb", "foreign_cpu_per_s", "steal_cpu_per_s", "seconds", "bytes",
               "calls_sent_per_gb", "calls_received_per_gb")


def _interface_provenance(via: str, veth: netns.VethPair | None) -> dict:
    sysctls = {}
    for name in ("tcp_rmem", "tcp_wmem", "tcp_congestion_control"):
        try:
            sysctls[name] = Path(f"/proc/sys/net/ipv4/{name}").read_text().strip()
        except OSError:
            sysctls[name] = None
    if via == "veth" and veth is not None:
        return {"network": {"via": "veth", **veth.describe()}, "sysctl": sysctls}
    return {"network": {"via": "loopback", "interface": "lo", "mtu_bytes": netns.mtu("lo"),
                        "offloads": netns.offloads("lo")}, "sysctl": sysctls}


def socket_sweep(paths: list[str], source_kinds: list[str], chunks: list[int], vias: list[str],
                 repetitions: int, duration_s: float, store: Store | None,
                 source_bytes: int | None = None) -> Iterator[Outcome]:
    for path in paths:
        if path not in senders.PATHS:
            raise InputError(f"unknown path {path!r}", f"use some of {','.join(senders.PATHS)}")
    for via in vias:
        if via not in VIAS:
            raise InputError(f"unknown --via {via!r}", "use loopback or veth")
    pids = acct.ksoftirqd_pids()
    for via in vias:
        veth = netns.VethPair().create() if via == "veth" else None
        try:
            net_prov = _interface_provenance(via, veth)
            for kind in source_kinds:
                size = source_bytes or max(SOURCE_MIN_BYTES, 2 * max(chunks))
                size = -(-size // max(chunks)) * max(chunks)  # whole chunks, so no send wraps mid-file
                source = sources.open_source(kind, size)
                try:
                    for chunk in chunks:
                        for path in paths:
                            yield _socket_config(path, source, chunk, via, veth, repetitions, duration_s,
                                                 store, pids, net_prov)
                finally:
                    source.close()
        finally:
            if veth is not None:
                veth.destroy()


def _socket_config(path, source, chunk, via, veth, repetitions, duration_s, store, pids,
                   net_prov) -> Outcome:
    what = f"{path} {source.kind} {chunk} B {via}"
    try:
        warm = transfer.run(path, source, chunk, via, duration_s=min(WARMUP_S, duration_s), veth=veth,
                            ksoftirqd=pids)
        if "refused" not in warm:
            raws = [transfer.run(path, source, chunk, via, duration_s=duration_s, veth=veth, ksoftirqd=pids)
                    for _ in range(repetitions)]
            refused = [r["refused"] for r in raws if "refused" in r]
            warm = {"refused": refused[0]} if refused else warm
    except transfer.TransferError as exc:  # a call failed mid-run (the kernel refused it): skip, go on
        warm = {"refused": str(exc)}
    if "refused" in warm:
        return Outcome(what, skipped=warm["refused"],
                       row={"path": path, "source": source.kind, "io_size_bytes": chunk, "via": via,
                            "warning": "skipped: " + warm["refused"]})
    runs = [transfer.cpu_split(r) for r in raws]
    samples = {k: [r.get(k) for r in runs] for k in _SPLIT_KEYS}
    summary = _summary(samples, "gbytes_per_s", f"{path} throughput")
    copied = [r.get("kernel_copied") for r in runs if "kernel_copied" in r]
    if copied:
        # True if the kernel copied in any run, False only if every run confirmed zero copy
        summary["kernel_copied"] = True if True in copied else (False if all(c is False for c in copied) else None)
        summary["zerocopy_sends"] = sum(r.get("zerocopy_sends") or 0 for r in runs)
        summary["zerocopy_completed_sends"] = sum(r.get("zerocopy_completed") or 0 for r in runs)
        summary["zerocopy_copied_sends"] = sum(r.get("zerocopy_copied") or 0 for r in runs)
    _noise_warning(summary, summary.get("median_foreign_cpu_per_s"))
    params = {"path": path, "source": source.kind, "io_size_bytes": chunk, "via": via,
              "duration_s": duration_s, "repetitions": repetitions, "source_bytes": source.size_bytes,
              "receiver": "recv_into a page-aligned buffer", "tx_cpu": _cpu_of(0),
              "rx_cpu": _cpu_of(1)}
    overlap = acct.softirq_in_task_time()
    extra = {**net_prov, "source": source.info,
             "cpu_accounting": {"softirq_in_task_time": overlap,
                                "in_context_softirq_taken_out_of_system_time": bool(overlap)},
             "socket_buffers": {"sndbuf_bytes": runs[-1]["sndbuf_bytes"], "rcvbuf_bytes": runs[-1]["rcvbuf_bytes"]}}
    if "pipe_bytes" in runs[-1]:
        extra["pipe_bytes"] = runs[-1]["pipe_bytes"]
    record = records.store_record(records.measured_record("copy.socket", params, samples, summary, extra), store)
    return Outcome(what, record=record, row=_socket_row(record))


def _cpu_of(index: int) -> int | None:
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[index] if len(cpus) >= 2 else None


def _socket_row(record: Record) -> dict:
    p, s = record.params, record.summary
    row = {"id": record.id[:8], "path": p["path"], "source": p["source"], "io_size_bytes": p["io_size_bytes"],
           "via": p["via"], "gbytes_per_s": s.get("median_gbytes_per_s"), "cv": s.get("cv")}
    for side in ("tx", "rx"):
        for part in ("user", "system", "softirq"):
            row[f"{side}_{part}"] = s.get(f"median_{side}_{part}_cpu_s_per_gb")
    row["total_cpu_s_per_gb"] = s.get("median_total_cpu_s_per_gb")
    row["foreign_cpu_per_s"] = s.get("median_foreign_cpu_per_s")
    notes = []
    if "kernel_copied" in s:
        notes.append({True: "kernel copied", False: "zero-copy"}.get(s["kernel_copied"],
                                                                     "zero copy unconfirmed (completions missing)"))
    if s.get("stability_warning"):
        notes.append("unstable")
    if s.get("noise_warning"):
        notes.append("noisy host")
    row["warning"] = ", ".join(notes)
    return row
