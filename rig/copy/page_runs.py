"""Sweeps of the per-page probes (copy.fault, copy.pin, copy.pagecopy) into stored records.

Like `runs`: one generator per probe yielding an Outcome per configuration, and a `*_plan` twin
with the same configurations in the same order and their expected cost. Each configuration runs
in one forked child pinned to the first CPU (`child.call`); the 4 KiB configuration of a size comes
before its THP twin, whose record then also carries the comparison with it (ratio per byte, and for
page copies the per-page / per-byte split), citing the 4 KiB record's id.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

from results.record import Record
from results.store import Store
from rig import accounting as acct
from rig import records
from rig.copy import child, faults, hugepages, pagecopy, pins
from rig.copy.buffers import PAGE_BYTES
from rig.copy.outcome import Outcome, Step, finish, summarize, warnings_of, watched

RATIO_KEY = "thp_over_4k_cpu_s_per_gb_ratio"


def _first_cpu() -> int:
    return min(os.sched_getaffinity(0))


def _measure(fn: Callable, args: tuple, what: str, pids: dict) -> tuple[dict | None, dict, str | None]:
    """fn(*args) in a probe child: (its result, foreign CPU figures, skip reason or None)."""
    try:
        result, noise = watched(lambda: child.call(fn, args, cpu=_first_cpu(), what=what), pids)
    except RuntimeError as exc:  # the child died or failed (e.g. out of memory): skip with the reason
        return None, {}, str(exc)
    if "skipped" in result:
        return None, noise, result["skipped"]
    return result, noise, None


def _build(name: str, params: dict, samples: dict, main: str, label: str, noise: dict, extra: dict) -> Record:
    """The record (not stored yet: the THP twin gets its comparison first)."""
    summary = finish(summarize(samples, main, label), noise)
    return records.measured_record(name, params, samples, summary, extra)


def _compare(record: Record, with_4k: Record | None) -> None:
    """The THP record's per-byte cost over its 4 KiB twin's, stored with the twin's id."""
    if with_4k is None:
        return
    ours, theirs = record.summary.get("median_cpu_s_per_gb"), with_4k.summary.get("median_cpu_s_per_gb")
    if ours is None or not theirs:
        return
    record.summary[RATIO_KEY] = ours / theirs
    record.summary["compared_with_record"] = with_4k.id


def _kinds(label: str, size: int, run: Callable[[str], tuple[Callable, tuple]], build: Callable,
           store: Store | None, pids: dict, unavailable: Callable[[str], str | None] = lambda kind: None
           ) -> Iterator[Outcome]:
    """One size of a probe: the 4 KiB configuration, then its THP twin compared with it.

    run(kind) -> (child function, its arguments); build(kind, result, noise, with_4k) -> the record
    (not stored) or a skip reason."""
    with_4k = None
    for kind in hugepages.PAGE_KINDS:
        what = f"{label} {size} B {kind}"
        reason = unavailable(kind) or hugepages.unavailable(kind, size)
        if not reason:
            fn, args = run(kind)
            result, noise, reason = _measure(fn, args, f"{label.split()[0]} probe", pids)
        built = reason or build(kind, result, noise, with_4k)
        if isinstance(built, str):
            yield Outcome(what, skipped=built)
            continue
        _compare(built, with_4k)
        records.store_record(built, store)
        with_4k = built if kind == "4k" else with_4k
        yield Outcome(what, record=built, row=_row(built))


def _thp_shortfall(record: Record, kind: str, huge_bytes: int, size: int) -> None:
    if kind == "thp" and huge_bytes < size:
        record.summary["thp_warning"] = (f"only {huge_bytes} of {size} bytes were backed by huge pages; "
                                         "the rest used 4 KiB pages")


def _row(record: Record) -> dict:
    p, s = record.params, record.summary
    return {"id": record.id[:8], "probe": record.name, "method": p.get("method", ""), "page_kind": p["page_kind"],
            "io_size_bytes": p["io_size_bytes"], "cpu_seconds_per_page": s.get("median_cpu_seconds_per_page"),
            "cpu_s_per_gb": s.get("median_cpu_s_per_gb"), RATIO_KEY: s.get(RATIO_KEY),
            "cv": s.get("cv"), "foreign_cpu_per_s": s.get("foreign_cpu_per_s"), "warning": warnings_of(s)}


# --------------------------------------------------------------------------- page faults

def fault_plan(sizes: list[int], repetitions: int) -> list[Step]:
    return [Step(f"fault {size} B {kind}", faults.expected_seconds(size, kind, repetitions))
            for size in sizes for kind in hugepages.PAGE_KINDS]


def fault_sweep(sizes: list[int], repetitions: int, store: Store | None) -> Iterator[Outcome]:
    pids = acct.ksoftirqd_pids()

    def build(kind, result, noise, with_4k):
        samples = faults.samples(result["runs"], size, kind)
        huge = int(min(samples["huge_page_bytes"]))
        if kind == "thp" and huge == 0:
            return ("the kernel gave no huge page to the THP mapping (fragmented memory or the defrag "
                    "setting): nothing to measure")
        params = {"io_size_bytes": size, "page_kind": kind, "page_bytes": faults.page_bytes(kind),
                  "pages": size // faults.page_bytes(kind), "touch_stride_bytes": faults.TOUCH_STRIDE_BYTES,
                  "repetitions": repetitions,
                  "touch": "one store per 4 KiB into a fresh private anonymous mapping (numpy strided store)"}
        extra = {"transparent_hugepage": hugepages.settings(), "cpu": _first_cpu()}
        record = _build("copy.fault", params, samples, "cpu_seconds_per_page", f"page faults {size} B {kind}",
                        noise, extra)
        _thp_shortfall(record, kind, huge, size)
        return record

    for size in sizes:
        yield from _kinds("fault", size, lambda kind: (faults.runs, (size, kind, repetitions)), build, store, pids)


# --------------------------------------------------------------------------- pinning

def pin_plan(sizes: list[int], repetitions: int) -> list[Step]:
    return [Step(f"pin {method} {size} B {kind}", pins.expected_seconds(size, repetitions))
            for method in pins.METHODS for size in sizes for kind in hugepages.PAGE_KINDS]


def pin_sweep(sizes: list[int], repetitions: int, store: Store | None) -> Iterator[Outcome]:
    pids = acct.ksoftirqd_pids()

    def build(kind, result, noise, with_4k):
        params = {"io_size_bytes": size, "method": method, "page_kind": kind, "page_bytes": PAGE_BYTES,
                  "pages": size // PAGE_BYTES, "repetitions": repetitions,
                  "calls_per_pin": result["runs"][0]["calls"],
                  "pin": ("io_uring IORING_REGISTER_BUFFERS / IORING_UNREGISTER_BUFFERS of one buffer"
                          if method == "uring-register" else
                          "vmsplice() into a pipe (1 MiB per call), drained to /dev/null untimed")}
        extra = {"transparent_hugepage": hugepages.settings(), "cpu": _first_cpu(),
                 "backing": {"huge_page_bytes": result["huge_bytes"]}}
        record = _build("copy.pin", params, pins.samples(result["runs"], size), "cpu_seconds_per_page",
                        f"pinning {method} {size} B {kind}", noise, extra)
        _thp_shortfall(record, kind, result["huge_bytes"], size)
        return record

    for method in pins.METHODS:
        for size in sizes:
            yield from _kinds(f"pin {method}", size, lambda kind: (pins.runs, (method, size, kind, repetitions)),
                              build, store, pids)


# --------------------------------------------------------------------------- page copies

def pagecopy_plan(sizes: list[int], repetitions: int) -> list[Step]:
    return [Step(f"pagecopy {size} B {kind}", pagecopy.expected_seconds(size, repetitions))
            for size in sizes for kind in hugepages.PAGE_KINDS]


def pagecopy_sweep(sizes: list[int], repetitions: int, store: Store | None) -> Iterator[Outcome]:
    pids = acct.ksoftirqd_pids()
    directory = pagecopy.mount_dir() if pagecopy.unavailable() is None else None

    def build(kind, result, noise, with_4k):
        if kind == "thp" and result["huge_bytes"] < size:
            return (f"the huge=always tmpfs held {result['huge_bytes']} of {size} bytes in huge folios: "
                    "no 2 MiB folios to compare with")
        folio = pagecopy.folio_bytes(kind)
        params = {"io_size_bytes": size, "page_kind": kind, "folio_bytes": folio, "folios": size // folio,
                  "page_bytes": PAGE_BYTES, "repetitions": repetitions,
                  "copy": "pread() of a whole tmpfs file (page cache) into a populated page-aligned "
                          "user buffer: shmem_file_read_iter -> shmem_get_folio + copy_folio_to_iter per folio"}
        extra = {"transparent_hugepage": hugepages.settings(), "cpu": _first_cpu(),
                 "tmpfs": {"huge": "always" if kind == "thp" else "never",
                           "huge_folio_bytes_seen": result["huge_bytes"]}}
        record = _build("copy.pagecopy", params, pagecopy.samples(result["runs"], size, kind), "cpu_s_per_gb",
                        f"page copies {size} B {kind}", noise, extra)
        if with_4k is not None and kind == "thp":
            per_read_cpu_s = {"4k": with_4k.summary["median_cpu_s_per_gb"] * size / 1e9,
                              "thp": record.summary["median_cpu_s_per_gb"] * size / 1e9}
            record.summary.update(pagecopy.per_page_and_byte(size, per_read_cpu_s))
        return record

    try:
        for size in sizes:
            yield from _kinds("pagecopy", size,
                              lambda kind: (pagecopy.runs, (str(directory), size, kind, repetitions)),
                              build, store, pids, unavailable=lambda kind: pagecopy.unavailable())
    finally:
        if directory is not None:
            try:
                directory.rmdir()
            except OSError:
                pass
