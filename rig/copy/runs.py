"""Sweeps of the copy probes, turned into records and stored one by one as each completes.

Each sweep is a generator: it yields one `Outcome` per configuration (a stored record, or a skip
with its reason), so the caller shows progress and an interrupted sweep keeps every record already
yielded. Each has a `*_plan` twin listing the same configurations in the same order with their
expected cost (seconds), which the progress estimate weighs what is left by.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterator

from results.record import Record
from results.store import Store
from rig import records
from rig import accounting as acct
from rig.copy import hugepages, memcpy, netns, pagecopy, senders, sources, transfer
from rig.copy.outcome import Outcome, Step, finish, noise_warning, summarize, warnings_of, watched
from scenarios.errors import InputError
from scenarios.units import MiB

VIAS = ("loopback", "veth")
MAX_MEMCPY_BYTES = 1 << 30
MAX_CHUNK_BYTES = 256 << 20
SOURCE_MIN_BYTES = 64 << 20     # larger than the last-level cache: file data comes from DRAM
WARMUP_S = 0.2
# expected costs for the progress estimate (seconds; measured on the rig host, rounded up)
PROCESS_START_S = 0.15          # fork a probe child (or a sender/receiver pair) and connect
FIRST_TOUCH_BYTES_PER_S = 2e9   # allocate and fill a buffer
SOURCE_BYTES_PER_S = 0.3e9      # generate, write and read back a source file
VETH_SETUP_S = 0.5
CALL_OVERHEAD_S = 0.25          # memcpy.call_overhead_s(), once per sweep


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


def remove_leftovers() -> list[str]:
    """Everything a killed run (dead pid in the name) left behind, of every probe kind: source
    files on tmpfs and on the disk directory, network namespaces, page-copy mount points."""
    removed = [str(p) for p in sources.remove_stale(sources.TMPFS_DIR)] if sources.TMPFS_DIR.is_dir() else []
    disk = sources.disk_dir_or_none()
    if disk is not None:
        removed += [str(p) for p in sources.remove_stale(disk)]
    removed += [str(p) for p in pagecopy.remove_stale(Path(tempfile.gettempdir()))]
    if os.geteuid() == 0:
        try:
            removed += [f"network namespace {n}" for n in netns.remove_stale()]
        except InputError:  # no `ip`: there can be no namespaces of ours either
            pass
    return removed


# --------------------------------------------------------------------------- memcpy

def memcpy_plan(sizes: list[int], processes: list[int], repetitions: int) -> list[Step]:
    # all CPU work: the copiers' timings (each >= MIN_TIMING_S of CPU), filling their buffers, forking;
    # copiers are counted one after the other (a busy host runs them so; a quiet one is faster)
    steps = []
    for size in sizes:
        calibrate_s = 2 * size / FIRST_TOUCH_BYTES_PER_S + 2.5 * memcpy.MIN_TIMING_S
        for i, procs in enumerate(processes):
            copier_s = 2 * size / FIRST_TOUCH_BYTES_PER_S + (repetitions + 0.1) * memcpy.MIN_TIMING_S * 1.2
            first = (calibrate_s + (CALL_OVERHEAD_S if size == sizes[0] else 0.0)) if i == 0 else 0.0
            steps.append(Step(f"memcpy {size} B x{procs}", first + PROCESS_START_S + procs * copier_s))
    return steps


def memcpy_sweep(sizes: list[int], processes: list[int], repetitions: int,
                 store: Store | None) -> Iterator[Outcome]:
    import numpy as np  # here, not at the top: the CLI imports this module for --help
    overhead = memcpy.call_overhead_s()
    pids = acct.ksoftirqd_pids()
    ncpu = len(os.sched_getaffinity(0))
    for size in sizes:
        count, alignment = memcpy.calibrate_count(size)
        per_batch = memcpy.copies_per_batch(size, count, memcpy.MIN_TIMING_S / count)
        count = -(-count // per_batch) * per_batch
        for procs in processes:
            what = f"memcpy {size} B x{procs}"
            if size * 2 * procs > _available_bytes() * 0.8:
                yield Outcome(what, skipped=f"{procs} x 2 x {size} bytes do not fit in available memory")
                continue
            try:
                timings, noise = watched(lambda: memcpy.measure(size, procs, repetitions, count, per_batch), pids)
            except RuntimeError as exc:  # a copier died (e.g. out of memory): skip with the reason
                yield Outcome(what, skipped=str(exc))
                continue
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
                       "call_corrected_per_core_gbytes_per_s": corrected,
                       "batch_median_per_core_gbytes_per_s": [t.batch_median_per_core_gbytes_per_s
                                                              for t in timings]}
            summary = finish(summarize(samples, "total_gbytes_per_s", f"memcpy {size} B x{procs}"), noise)
            summary["call_overhead_s"] = overhead
            params = {"io_size_bytes": size, "processes": procs, "copies_per_timing": count,
                      "copies_per_batch": per_batch, "min_timing_s": memcpy.MIN_TIMING_S,
                      "repetitions": repetitions, "pinned": procs <= ncpu,
                      "copy_function": "glibc memmove via ctypes"}
            extra = {"buffers": alignment, "glibc_memcpy": memcpy.glibc_tunables(),
                     "transparent_hugepage": hugepages.settings()}
            record = records.store_record(records.measured_record(
                "copy.memcpy", params, samples, summary, extra_provenance=extra), store)
            yield Outcome(what, record=record, row=_memcpy_row(record))


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
            "batch_median_per_core_gbytes_per_s": s.get("median_batch_median_per_core_gbytes_per_s"),
            "cv": s.get("cv"), "foreign_cpu_per_s": s.get("foreign_cpu_per_s"), "warning": warnings_of(s)}


# --------------------------------------------------------------------------- sockets

_SPLIT_KEYS = ("gbytes_per_s", "tx_user_cpu_s_per_gb", "tx_system_cpu_s_per_gb", "tx_softirq_cpu_s_per_gb",
               "rx_user_cpu_s_per_gb", "rx_system_cpu_s_per_gb", "rx_softirq_cpu_s_per_gb",
               "total_cpu_s_per_gb", "foreign_cpu_per_s", "steal_cpu_per_s", "seconds", "bytes",
               "calls_sent_per_gb", "calls_received_per_gb")


def interface_provenance(via: str, veth: netns.VethPair | None) -> dict:
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


def source_size(chunks: list[int], source_bytes: int | None = None) -> int:
    size = source_bytes or max(SOURCE_MIN_BYTES, 2 * max(chunks))
    return -(-size // max(chunks)) * max(chunks)  # whole chunks, so no send wraps mid-file


def transfer_step(what: str, path: str, source_kind: str, repetitions: int, duration_s: float,
                  setup_cpu_s: float = 0.0) -> Step:
    """One socket configuration: warm-up and timed transfers (wall: their duration; CPU: starting
    the sender/receiver pair each time), nothing if the source refuses the path."""
    if path in senders.FILE_ONLY and source_kind == "anon":
        return Step(what, setup_cpu_s)
    return Step(what, setup_cpu_s + (repetitions + 1) * PROCESS_START_S,
                min(WARMUP_S, duration_s) + repetitions * duration_s)


def socket_plan(paths: list[str], source_kinds: list[str], chunks: list[int], vias: list[str],
                repetitions: int, duration_s: float) -> list[Step]:
    steps = []
    for via in vias:
        setup = VETH_SETUP_S if via == "veth" else 0.0
        for kind in source_kinds:
            setup += source_size(chunks) / SOURCE_BYTES_PER_S
            for chunk in chunks:
                for path in paths:
                    steps.append(transfer_step(f"{path} {kind} {chunk} B {via}", path, kind, repetitions,
                                               duration_s, setup))
                    setup = 0.0
    return steps


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
            net_prov = interface_provenance(via, veth)
            for kind in source_kinds:
                source = sources.open_source(kind, source_size(chunks, source_bytes))
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


def transfers(path, source, chunk, via, veth, repetitions, duration_s, pids, warm_up=True) -> list[dict] | str:
    """A warm-up and `repetitions` timed transfers (raw figures), or the reason the path is refused."""
    try:
        if warm_up:
            warm = transfer.run(path, source, chunk, via, duration_s=min(WARMUP_S, duration_s), veth=veth,
                                ksoftirqd=pids)
            if "refused" in warm:
                return warm["refused"]
        raws = [transfer.run(path, source, chunk, via, duration_s=duration_s, veth=veth, ksoftirqd=pids)
                for _ in range(repetitions)]
    except transfer.TransferError as exc:  # a call failed mid-run (the kernel refused it): skip, go on
        return str(exc)
    refused = [r["refused"] for r in raws if "refused" in r]
    return refused[0] if refused else raws


def skipped_transfer(what: str, reason: str, path: str, source_kind: str, chunk: int, via: str) -> Outcome:
    return Outcome(what, skipped=reason, row={"path": path, "source": source_kind, "io_size_bytes": chunk,
                                              "via": via, "warning": "skipped: " + reason})


def _socket_config(path, source, chunk, via, veth, repetitions, duration_s, store, pids,
                   net_prov) -> Outcome:
    what = f"{path} {source.kind} {chunk} B {via}"
    raws = transfers(path, source, chunk, via, veth, repetitions, duration_s, pids)
    if isinstance(raws, str):
        return skipped_transfer(what, raws, path, source.kind, chunk, via)
    record = records.store_record(transfer_record("copy.socket", [transfer.cpu_split(r) for r in raws],
                                                  path, source, chunk, via, duration_s, net_prov), store)
    return Outcome(what, record=record, row=socket_row(record))


def transfer_record(name: str, runs: list[dict], path: str, source, chunk: int, via: str, duration_s: float,
                    net_prov: dict, extra_params: dict | None = None) -> Record:
    """A record of repeated transfers of one configuration (cpu_split figures of each run)."""
    samples = {k: [r.get(k) for r in runs] for k in _SPLIT_KEYS}
    summary = summarize(samples, "gbytes_per_s", f"{path} throughput")
    copied = [r.get("kernel_copied") for r in runs if "kernel_copied" in r]
    if copied:
        # True if the kernel copied in any run, False only if every run confirmed zero copy
        summary["kernel_copied"] = True if True in copied else (False if all(c is False for c in copied) else None)
        summary["zerocopy_sends"] = sum(r.get("zerocopy_sends") or 0 for r in runs)
        summary["zerocopy_completed_sends"] = sum(r.get("zerocopy_completed") or 0 for r in runs)
        summary["zerocopy_copied_sends"] = sum(r.get("zerocopy_copied") or 0 for r in runs)
    noise_warning(summary, summary.get("median_foreign_cpu_per_s"))
    params = {"path": path, "source": source.kind, "io_size_bytes": chunk, "via": via,
              "duration_s": duration_s, "repetitions": len(runs), "source_bytes": source.size_bytes,
              "receiver": "recv_into a page-aligned buffer", "tx_cpu": _cpu_of(0),
              "rx_cpu": _cpu_of(1), **(extra_params or {})}
    overlap = acct.softirq_in_task_time()
    extra = {**net_prov, "source": source.info,
             "cpu_accounting": {"softirq_in_task_time": overlap,
                                "in_context_softirq_taken_out_of_system_time": bool(overlap)},
             "socket_buffers": {"sndbuf_bytes": runs[-1]["sndbuf_bytes"], "rcvbuf_bytes": runs[-1]["rcvbuf_bytes"]}}
    if "pipe_bytes" in runs[-1]:
        extra["pipe_bytes"] = runs[-1]["pipe_bytes"]
    return records.measured_record(name, params, samples, summary, extra)


def _cpu_of(index: int) -> int | None:
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[index] if len(cpus) >= 2 else None


def socket_row(record: Record) -> dict:
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
    if warnings_of(s):
        notes.append(warnings_of(s))
    row["warning"] = ", ".join(notes)
    return row
