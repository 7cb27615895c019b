"""Page-fault cost per page: populating a fresh anonymous mapping by touching it, with 4 KiB pages
or with transparent huge pages.

One store per 4 KiB into a fresh private anonymous mapping, by a numpy strided store (a C loop:
the interpreter is not in the figure, ~1 ns per store). Every store to a page not yet present
faults: the kernel allocates a page, zeroes it and maps it. With THP (MADV_HUGEPAGE on a range
aligned to 2 MiB) the first store in each 2 MiB faults in a whole huge page (zeroing 2 MiB) and
the other 511 stores hit it. Both kinds get the same stores, so the difference is the faults.

What actually happened is counted, not assumed: the minor faults of the run (getrusage), and the
mapping's AnonHugePages (/proc/self/smaps) for THP. Then the mapping is unmapped (pages freed, TLB
flushed) and that is timed too. Times are the copier's own CPU time (CLOCK_THREAD_CPUTIME_ID, exact:
other tenants taking the core do not lengthen it) and wall-clock time.

Each configuration runs in one forked child pinned to a CPU (child.call): one warm-up mapping,
then one fresh mapping per repetition.
"""

from __future__ import annotations

import resource
import time

from rig.copy import hugepages
from rig.copy.buffers import PAGE_BYTES, address_of
from rig.copy.outcome import per_page_samples

TOUCH_STRIDE_BYTES = PAGE_BYTES


def _touch_once(size_bytes: int, kind: str) -> dict:
    import numpy as np  # here, not at the top: the CLI imports this module for --help
    mapping = hugepages.fresh_mapping(size_bytes, kind)
    offset = mapping.address - address_of(mapping.mm)
    view = np.frombuffer(mapping.mm, dtype=np.uint8)[offset:offset + size_bytes]
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0, c0 = time.perf_counter(), time.thread_time()
    view[::TOUCH_STRIDE_BYTES] = 1
    t1, c1 = time.perf_counter(), time.thread_time()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    huge = hugepages.anon_huge_bytes(mapping.address)
    del view  # the mapping cannot be unmapped while numpy holds it
    t2, c2 = time.perf_counter(), time.thread_time()
    mapping.close()
    t3, c3 = time.perf_counter(), time.thread_time()
    return {"wall_s": t1 - t0, "cpu_s": c1 - c0, "faults": faults, "huge_bytes": huge,
            "unmap_wall_s": t3 - t2, "unmap_cpu_s": c3 - c2}


def runs(size_bytes: int, kind: str, repetitions: int) -> dict:
    """In the probe child: one warm-up, then `repetitions` fresh mappings touched and unmapped."""
    _touch_once(size_bytes, kind)
    return {"runs": [_touch_once(size_bytes, kind) for _ in range(repetitions)]}


def page_bytes(kind: str) -> int:
    return hugepages.huge_page_bytes() if kind == "thp" else PAGE_BYTES


def samples(raw_runs: list[dict], size_bytes: int, kind: str) -> dict[str, list[float]]:
    """Per-page and per-byte figures of each run; a page is the kind's page (4 KiB or 2 MiB)."""
    pages = size_bytes / page_bytes(kind)
    return {**per_page_samples(raw_runs, pages, size_bytes, "unmap"),
            "faults_per_page": [r["faults"] / pages for r in raw_runs],
            "huge_page_bytes": [float(r["huge_bytes"]) for r in raw_runs]}


def expected_seconds(size_bytes: int, kind: str, repetitions: int) -> float:
    """A rough cost for the progress estimate: ~1 us per 4 KiB fault, ~0.1 ms per 2 MiB one."""
    per_byte = 0.25e-9 if kind == "4k" else 0.05e-9
    return 0.05 + (repetitions + 1) * size_bytes * per_byte * 2
