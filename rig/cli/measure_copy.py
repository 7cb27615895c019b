"""`rdmarig measure copy`: what copies cost on this host (memcpy and file -> TCP socket paths)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Optional

import typer

from results.tables import Column, Table, render
from rig.cli import error, interrupt_exit_code
from rig.cli._common import JsonOption, StoreOption, open_store
from rig.copy import runs, senders, sources
from rig.progress import Progress
from scenarios.errors import InputError
from scenarios.units import parse_int_list, parse_size_list, parse_time

PROBES = ("memcpy", "socket", "all")
DEFAULT_MEMCPY_SIZES = "4KiB..256MiB"
DEFAULT_CHUNKS = "64KiB,1MiB,8MiB"

MEMCPY_COLUMNS = [
    Column.of("io_size_bytes", "size", "{:d}"),
    Column("processes", "copiers", "{:d}"),
    Column("total_gbytes_per_s", "total [GB/s]", "{:.2f}"),
    Column("per_core_gbytes_per_s", "per core [GB/s]", "{:.2f}"),
    Column("corrected_gbytes_per_s", "per core, call cost removed [GB/s]", "{:.2f}"),
    Column("per_cpu_second_gbytes_per_s", "per CPU-second [GB/s]", "{:.2f}"),
    Column("cv", "cv", "{:.0%}"),
    Column("foreign_cpu_per_s", "foreign [CPU-s/s]", "{:.2f}"),
    Column("warning", "note"),
    Column("id", "record"),
]

SOCKET_COLUMNS = [
    Column("path", "path"),
    Column("source", "source"),
    Column.of("io_size_bytes", "chunk", "{:d}"),
    Column("via", "via"),
    Column("gbytes_per_s", "throughput [GB/s]", "{:.2f}"),
    Column("tx_user", "tx user [CPU-s/GB]", "{:.3f}"),
    Column("tx_system", "tx sys [CPU-s/GB]", "{:.3f}"),
    Column("tx_softirq", "tx softirq [CPU-s/GB]", "{:.3f}"),
    Column("rx_user", "rx user [CPU-s/GB]", "{:.3f}"),
    Column("rx_system", "rx sys [CPU-s/GB]", "{:.3f}"),
    Column("rx_softirq", "rx softirq [CPU-s/GB]", "{:.3f}"),
    Column("total_cpu_s_per_gb", "total [CPU-s/GB]", "{:.3f}"),
    Column("foreign_cpu_per_s", "foreign [CPU-s/s]", "{:.2f}"),
    Column("cv", "cv", "{:.0%}"),
    Column("warning", "note"),
    Column("id", "record"),
]


def _list(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    items = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in items if p not in allowed]
    if bad or not items:
        raise InputError(f"{option}: unknown value {', '.join(bad) or repr(text)}",
                         f"use some of {','.join(allowed)}")
    return items


def _check_store(store) -> None:
    """Fail before measuring, not after the first record, when the store cannot be written."""
    if store.spool is not None:
        return
    path = Path(store.path)
    target = path if path.exists() else path.parent
    while not target.exists():
        target = target.parent
    if not os.access(target, os.W_OK) or (path.exists() and not path.is_file()):
        raise InputError(f"cannot write the result store {path}",
                         "pass --store PATH to a writable file or set RDMARIG_STORE")
    store.query(limit=1)  # opens (and creates) it now; raises InputError if it cannot


def copy(
    probe: str = typer.Option("all", "--probe", help="memcpy, socket or all."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="memcpy buffer sizes and socket chunk sizes, "
                                        f"e.g. '4KiB..8MiB' or '64KiB,1MiB'. Default: memcpy "
                                        f"{DEFAULT_MEMCPY_SIZES}, socket {DEFAULT_CHUNKS}."),
    threads: str = typer.Option("1,2", "--threads", help="Concurrent memcpy copiers (processes), e.g. 1,2."),
    paths: str = typer.Option(",".join(senders.PATHS), "--paths", help="Socket paths to measure."),
    source: str = typer.Option("tmpfs", "--source", help="tmpfs, disk or anon (comma list allowed)."),
    via: str = typer.Option("loopback", "--via", help="loopback or veth (two namespaces), comma list allowed."),
    repetitions: int = typer.Option(3, "--repetitions", min=1, help="Timed runs per configuration."),
    duration: str = typer.Option("0.5s", "--duration", help="Length of one socket transfer."),
    as_json: bool = JsonOption,
    store_path: Optional[Path] = StoreOption,
) -> None:
    """Measure memcpy bandwidth and the CPU cost of file -> TCP socket copy paths; store records."""
    if probe not in PROBES:
        raise InputError(f"--probe: unknown probe {probe!r}", "use memcpy, socket or all")
    duration_s = parse_time(duration, "--duration")
    if not 0.05 <= duration_s <= 600:
        raise InputError(f"--duration {duration!r} is outside 50ms..600s", "use e.g. 0.5s")
    process_counts = parse_int_list(threads, "--threads")
    if any(n < 1 or n > 64 for n in process_counts):
        raise InputError(f"--threads {threads!r}: counts must be 1..64", "use e.g. 1,2")
    path_list = _list(paths, senders.PATHS, "--paths")
    source_list = _list(source, sources.SOURCES, "--source")
    via_list = _list(via, runs.VIAS, "--via")
    mem_sizes = chunk_sizes = None
    if probe in ("memcpy", "all"):
        mem_sizes = runs.check_sizes(parse_size_list(sizes or DEFAULT_MEMCPY_SIZES, "--sizes"),
                                     "memcpy size", runs.MAX_MEMCPY_BYTES)
    if probe in ("socket", "all"):
        chunk_sizes = runs.check_sizes(parse_size_list(sizes or DEFAULT_CHUNKS, "--sizes"),
                                       "chunk size", runs.MAX_CHUNK_BYTES)
    if "veth" in via_list and probe != "memcpy" and os.geteuid() != 0:
        raise InputError("--via veth creates network namespaces, which needs root",
                         "run as root or use --via loopback")

    store = open_store(store_path)
    _check_store(store)
    memcpy_rows, socket_rows, skipped, ids = [], [], [], []
    try:
        total = (len(mem_sizes) * len(process_counts) if mem_sizes else 0) + \
                (len(chunk_sizes) * len(path_list) * len(source_list) * len(via_list) if chunk_sizes else 0)
        progress = Progress(total, "measure copy")
        sweeps = []
        if mem_sizes:
            sweeps.append((runs.memcpy_sweep(mem_sizes, process_counts, repetitions, store), memcpy_rows))
        if chunk_sizes:
            sweeps.append((runs.socket_sweep(path_list, source_list, chunk_sizes, via_list, repetitions,
                                             duration_s, store), socket_rows))
        for sweep, rows in sweeps:
            with contextlib.closing(sweep):
                for outcome in sweep:
                    progress.step(outcome.what)
                    if outcome.skipped:
                        skipped.append({"what": outcome.what, "reason": outcome.skipped})
                        progress.note(f"skipped {outcome.what}: {outcome.skipped}")
                        continue
                    ids.append(outcome.record.id)
                    rows.append(outcome.row)
                    for key in ("stability_warning", "noise_warning"):
                        if outcome.record.summary.get(key):
                            progress.note(f"warning: {outcome.what}: {outcome.record.summary[key]}")
    except KeyboardInterrupt as exc:
        # the sweeps' finally blocks have removed namespaces, source files and child processes
        error(f"interrupted; the {len(ids)} records completed before the interrupt are kept in "
              f"{store.path}", interrupt_exit_code(exc))
    finally:
        store.close()

    if as_json:
        print(json.dumps({"store": str(store.path), "record_ids": ids, "memcpy": memcpy_rows,
                          "socket": socket_rows, "skipped": skipped}, indent=2, default=float))
        return
    if memcpy_rows:
        print(render(Table("memcpy bandwidth (bytes copied per second, page-aligned buffers)",
                           MEMCPY_COLUMNS, memcpy_rows), "md"))
    if socket_rows:
        notes = [f"skipped {s['what']}: {s['reason']}" for s in skipped if "memcpy" not in s["what"]]
        notes.append("tx = sender's CPU, rx = receiver's CPU; softirq counts where it ran "
                     "(on loopback the receive path runs on the sender's CPU)")
        print(render(Table("file -> TCP socket paths (receiver: recv_into)", SOCKET_COLUMNS,
                           [r for r in socket_rows]), "md") + "\n".join(f"- {n}" for n in notes))
    print(f"\n{len(ids)} records stored in {store.path}")
