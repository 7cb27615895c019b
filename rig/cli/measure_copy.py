"""`rdmarig measure copy`: what copies cost on this host (memcpy, file -> TCP socket paths, page
faults, pinning, page copies, checksum offload)."""

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
from rig.copy import csum, page_runs, runs, senders, sources
from rig.copy.outcome import host_load
from rig.progress import Progress
from scenarios.errors import InputError
from scenarios.units import parse_size_list, parse_time

PROBES = ("memcpy", "socket", "fault", "pin", "pagecopy", "csum")
DEFAULT_SIZES = {"memcpy": "4KiB..256MiB", "socket": "64KiB,1MiB,8MiB", "fault": "64MiB", "pin": "64MiB",
                 "pagecopy": "16MiB", "csum": "1MiB"}
# the largest size each probe takes, and what its size is
SIZE_LIMITS = {"memcpy": (runs.MAX_MEMCPY_BYTES, "memcpy size"), "socket": (runs.MAX_CHUNK_BYTES, "chunk size"),
               "fault": (1 << 30, "fault mapping size"), "pin": (1 << 30, "pin buffer size"),
               "pagecopy": (1 << 30, "page-copy file size"), "csum": (runs.MAX_CHUNK_BYTES, "chunk size")}
PAGE_SIZED = ("fault", "pin", "pagecopy")
REPETITIONS = (1, 1000)
DURATION_S = (0.05, 600.0)
THREADS = (1, 64)
MAX_LIST_ITEMS = 64
HOUR_S = parse_time("1h")
MAX_RUN_S = 24 * HOUR_S   # a run whose estimate is longer is a typo, not a plan

MEMCPY_COLUMNS = [
    Column.of("io_size_bytes", "size", "{:d}"),
    Column("processes", "copiers", "{:d}"),
    Column("total_gbytes_per_s", "total [GB/s]", "{:.2f}"),
    Column("per_core_gbytes_per_s", "per core [GB/s]", "{:.2f}"),
    Column("corrected_gbytes_per_s", "per core, call cost removed [GB/s]", "{:.2f}"),
    Column("per_cpu_second_gbytes_per_s", "per CPU-second [GB/s]", "{:.2f}"),
    Column.of("batch_median_per_core_gbytes_per_s", "per core, median batch", "{:.2f}"),
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

PAGE_COLUMNS = [
    Column("probe", "probe"),
    Column("method", "method"),
    Column("page_kind", "pages"),
    Column.of("io_size_bytes", "size", "{:d}"),
    Column.of("cpu_seconds_per_page", "CPU seconds per 4 KiB or 2 MiB page", "{:.3g}"),
    Column.of("cpu_s_per_gb", "CPU per byte", "{:.4f}"),
    Column.of(page_runs.RATIO_KEY, "THP / 4k per byte", "{:.3f}"),
    Column.of("cv", "cv", "{:.0%}"),
    Column.of("foreign_cpu_per_s", "foreign", "{:.2f}"),
    Column("warning", "note"),
    Column("id", "record"),
]

CSUM_COLUMNS = [
    Column("path", "path"),
    Column.of("io_size_bytes", "chunk", "{:d}"),
    Column("checksum_offload", "checksum offload"),
    Column.of("median_gbytes_per_s", "throughput", "{:.2f}"),
    Column.of("tx_system_cpu_s_per_gb", "tx sys", "{:.3f}"),
    Column.of("tx_softirq_cpu_s_per_gb", "tx softirq", "{:.3f}"),
    Column.of("rx_system_cpu_s_per_gb", "rx sys", "{:.3f}"),
    Column.of("rx_softirq_cpu_s_per_gb", "rx softirq", "{:.3f}"),
    Column.of("total_cpu_s_per_gb", "total", "{:.3f}"),
    Column.of("offload_off_extra_total_cpu_s_per_gb", "off - on, paired", "{:+.3f}"),
    Column.of("foreign_cpu_per_s", "foreign", "{:.2f}"),
    Column("warning", "note"),
    Column("id", "record"),
]


def _list(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    items = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in items if p not in allowed]
    if bad or not items:
        raise InputError(f"{option}: unknown value {', '.join(bad) or repr(text)}",
                         f"use some of {','.join(allowed)}")
    twice = sorted({p for p in items if items.count(p) > 1})
    if twice:
        raise InputError(f"{option}: {', '.join(twice)} listed twice", "list each value once")
    return items


def _whole(text: str, option: str, bounds: tuple[int, int]) -> int:
    """A whole number within bounds, the range in the message (typer's own error is several lines)."""
    lo, hi = bounds
    try:
        value = int(text.strip())
    except (ValueError, AttributeError):
        raise InputError(f"{option} {text!r} is not a whole number", f"use {lo}..{hi}") from None
    if not lo <= value <= hi:
        raise InputError(f"{option} {value} is outside {lo}..{hi}", f"use {lo}..{hi}")
    return value


def _counts(text: str) -> list[int]:
    items = [p for p in text.split(",") if p.strip()]
    if not items:
        raise InputError(f"--threads {text!r} names no copier count", f"use e.g. 1,2 (each {THREADS[0]}..{THREADS[1]})")
    if len(items) > 16:
        raise InputError(f"--threads lists {len(items)} counts, more than 16", "list at most 16 copier counts")
    try:
        counts = [int(p) for p in items]
    except ValueError:
        raise InputError(f"--threads {text!r}: counts must be whole numbers {THREADS[0]}..{THREADS[1]}",
                         "use e.g. 1,2") from None
    if any(not THREADS[0] <= n <= THREADS[1] for n in counts):
        raise InputError(f"--threads {text!r}: counts must be {THREADS[0]}..{THREADS[1]}", "use e.g. 1,2")
    if len(set(counts)) != len(counts):
        raise InputError(f"--threads {text!r} lists a count twice", "list each copier count once")
    return counts


def _sizes(text: str | None, probe: str) -> list[int]:
    limit, what = SIZE_LIMITS[probe]
    values = parse_size_list(text or DEFAULT_SIZES[probe], "--sizes")
    if len(values) > MAX_LIST_ITEMS:
        raise InputError(f"--sizes gives {len(values)} sizes, more than {MAX_LIST_ITEMS}",
                         "measure fewer sizes (a doubling range from 1 B to 1 GiB has 31)")
    sizes = runs.check_sizes(values, what, limit)
    if len(set(sizes)) != len(sizes):
        raise InputError("--sizes lists a size twice", "list each size once")
    if probe in PAGE_SIZED:
        odd = [s for s in sizes if s % 4096]
        if odd:
            raise InputError(f"{what} {odd[0]} bytes is not a whole number of 4 KiB pages (--probe {probe})",
                             "use multiples of 4KiB, e.g. 64MiB")
    return sizes


def _sweeps(probes, sizes, counts, path_list, source_list, via_list, csum_paths, repetitions, duration_s):
    """(name, plan, start) of each probe asked for, in the order they run; start(store) returns the
    probe's sweep (a generator of outcomes)."""
    out = []
    for probe in probes:
        s = sizes[probe]
        if probe == "memcpy":
            out.append((probe, runs.memcpy_plan(s, counts, repetitions),
                        lambda store, s=s: runs.memcpy_sweep(s, counts, repetitions, store)))
        elif probe == "socket":
            out.append((probe, runs.socket_plan(path_list, source_list, s, via_list, repetitions, duration_s),
                        lambda store, s=s: runs.socket_sweep(path_list, source_list, s, via_list, repetitions,
                                                             duration_s, store)))
        elif probe == "csum":
            out.append((probe, csum.plan(csum_paths, s, repetitions, duration_s),
                        lambda store, s=s: csum.sweep(csum_paths, s, repetitions, duration_s, store)))
        else:
            plan = getattr(page_runs, f"{probe}_plan")(s, repetitions)
            sweep = getattr(page_runs, f"{probe}_sweep")
            out.append((probe, plan, lambda store, s=s, sweep=sweep: sweep(s, repetitions, store)))
    return out


def copy(
    probe: str = typer.Option("all", "--probe", help=f"{', '.join(PROBES)} or all (comma list allowed)."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Sizes for every probe asked for, e.g. '4KiB..8MiB' "
                                        "or '64KiB,1MiB': memcpy buffer, socket/csum chunk, fault mapping, pin "
                                        "buffer, page-copy file. Default: " +
                                        "; ".join(f"{p} {d}" for p, d in DEFAULT_SIZES.items()) + "."),
    threads: str = typer.Option("1,2", "--threads", help=f"Concurrent memcpy copiers (processes), e.g. 1,2; "
                                f"each {THREADS[0]}..{THREADS[1]}."),
    paths: Optional[str] = typer.Option(None, "--paths", help="Socket paths to measure (socket and csum). Default: "
                                        f"socket all, csum {','.join(csum.DEFAULT_PATHS)}."),
    source: str = typer.Option("tmpfs", "--source", help="tmpfs, disk or anon (comma list allowed)."),
    via: str = typer.Option("loopback", "--via", help="loopback or veth (two namespaces), comma list allowed."),
    repetitions: str = typer.Option("3", "--repetitions", metavar="N",
                                    help=f"Timed runs per configuration, {REPETITIONS[0]}..{REPETITIONS[1]}."),
    duration: str = typer.Option("0.5s", "--duration", help="Length of one socket transfer, 50ms..600s."),
    as_json: bool = JsonOption,
    store_path: Optional[Path] = StoreOption,
) -> None:
    """Measure what copies cost on this host (memcpy, socket paths, page faults, pinning, page copies,
    checksum offload); store one record per configuration."""
    probes = list(PROBES) if probe.strip() == "all" else _list(probe, PROBES, "--probe")
    reps = _whole(repetitions, "--repetitions", REPETITIONS)
    duration_s = parse_time(duration, "--duration")
    if not DURATION_S[0] <= duration_s <= DURATION_S[1]:
        raise InputError(f"--duration {duration!r} is outside 50ms..600s", "use e.g. 0.5s")
    counts = _counts(threads)
    path_list = _list(paths or ",".join(senders.PATHS), senders.PATHS, "--paths")
    csum_paths = _list(paths or ",".join(csum.DEFAULT_PATHS), senders.PATHS, "--paths")
    source_list = _list(source, sources.SOURCES, "--source")
    via_list = _list(via, runs.VIAS, "--via")
    size_lists = {p: _sizes(sizes, p) for p in probes}
    if "veth" in via_list and "socket" in probes and os.geteuid() != 0:
        raise InputError("--via veth creates network namespaces, which needs root",
                         "run as root or use --via loopback")
    sweeps = _sweeps(probes, size_lists, counts, path_list, source_list, via_list, csum_paths, reps, duration_s)
    steps = [step for _, plan, _ in sweeps for step in plan]
    expected_s = sum(step.cost_s() for step in steps)  # on an idle host: a busy one is no typo
    if expected_s > MAX_RUN_S:
        raise InputError(f"this run would take about {expected_s / HOUR_S:.0f} h ({len(steps)} configurations x "
                         f"{reps} repetitions), over the {MAX_RUN_S / HOUR_S:.0f} h a run may take",
                         "measure fewer sizes, paths or repetitions, or a shorter --duration")

    store = open_store(store_path)      # opened for writing now: a bad store fails before measuring
    rows: dict[str, list[dict]] = {p: [] for p in PROBES}
    skipped, ids = [], []
    try:
        load = host_load()
        with Progress(len(steps), "measure copy", costs=[s.cost_s(load) for s in steps],
                      names=[s.what for s in steps]) as progress:
            removed = runs.remove_leftovers()
            if removed:
                progress.note(f"removed what killed runs left behind: {', '.join(removed)}")
            for name, _, start in sweeps:
                with contextlib.closing(start(store)) as sweep:
                    for outcome in sweep:
                        progress.step(outcome.what)
                        if outcome.skipped:
                            skipped.append({"probe": name, "what": outcome.what, "reason": outcome.skipped})
                            progress.note(f"skipped {outcome.what}: {outcome.skipped}")
                            continue
                        ids.append(outcome.record.id)
                        rows[name].append(outcome.row)
                        for key in ("stability_warning", "noise_warning", "thp_warning"):
                            if outcome.record.summary.get(key):
                                progress.note(f"warning: {outcome.what}: {outcome.record.summary[key]}")
    except KeyboardInterrupt as exc:
        # the sweeps' finally blocks have removed namespaces, source files and child processes
        error(f"interrupted; the {len(ids)} records completed before the interrupt are kept in "
              f"{store.path}", interrupt_exit_code(exc))
    finally:
        store.close()

    if as_json:
        print(json.dumps({"store": str(store.path), "record_ids": ids, **rows, "skipped": skipped},
                         indent=2, default=float))
        return
    _print_tables(rows, skipped)
    print(f"\n{len(ids)} records stored in {store.path}")


def _print_tables(rows: dict[str, list[dict]], skipped: list[dict]) -> None:
    tables = [
        (("memcpy",), "memcpy bandwidth (bytes copied per second, page-aligned buffers)", MEMCPY_COLUMNS, None),
        (("socket",), "file -> TCP socket paths (receiver: recv_into)", SOCKET_COLUMNS,
         "tx = sender's CPU, rx = receiver's CPU; softirq counts where it ran (on loopback the receive path runs "
         "on the sender's CPU)"),
        (PAGE_SIZED, "per-page costs: page faults, pinning, page copies", PAGE_COLUMNS,
         "CPU time of the probe's own thread (exact); a page is 4 KiB, or 2 MiB for THP faults"),
        (("csum",), "TCP send, checksum offload on vs off", CSUM_COLUMNS,
         "veth pair, TSO off in both; off = tx and rx checksum offload off on both ends; on/off runs interleaved"),
    ]
    for probes, title, columns, note in tables:
        table_rows = [row for p in probes for row in rows[p]]
        if not table_rows:
            continue
        if note is None:  # memcpy: its skips are in the progress log
            print(render(Table(title, columns, table_rows), "md"))
            continue
        notes = [f"skipped {s['what']}: {s['reason']}" for s in skipped if s["probe"] in probes] + [note]
        print(render(Table(title, columns, table_rows), "md") + "\n".join(f"- {n}" for n in notes))
