"""What every probe sweep shares: the outcome of one configuration, the summary of its repeated
runs, and the watch on other tenants' CPU that decides a record's noise warning."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from results.record import Record
from rig import accounting as acct


@dataclass
class Outcome:
    what: str
    record: Record | None = None
    skipped: str | None = None
    row: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One planned configuration and its expected cost (for the progress estimate): seconds of CPU
    work, which other tenants stretch (`load`: runnable tasks per CPU), and seconds of wall time
    fixed by the probe itself (a transfer's duration), which they do not."""
    what: str
    cpu_s: float
    wall_s: float = 0.0

    def cost_s(self, load: float = 1.0) -> float:
        return self.cpu_s * max(load, 1.0) + self.wall_s


def host_load() -> float:
    """Runnable tasks per CPU over the last minute (/proc/loadavg), at least 1: how much longer
    CPU work takes here than on an idle host."""
    try:
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 1.0
    return max(1.0, load1 / max(1, len(os.sched_getaffinity(0))))


def summarize(samples: dict[str, list[float]], main: str, label: str) -> dict:
    """Statistics of the main series (with its stability warning) and the median of every other."""
    import numpy as np  # here, not at the top: the CLI imports this module for --help
    from results import stats
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


def per_page_samples(raw_runs: list[dict], pages: float, size_bytes: int, after: str) -> dict[str, list[float]]:
    """Per-page and per-byte figures of each run of a per-page probe: its timed step (raw `cpu_s`,
    `wall_s`) and the step `after` it (raw `<after>_cpu_s`: an unmap, a release)."""
    gb = size_bytes / 1e9
    return {
        "cpu_seconds_per_page": [r["cpu_s"] / pages for r in raw_runs],
        "seconds_per_page": [r["wall_s"] / pages for r in raw_runs],
        "cpu_s_per_gb": [r["cpu_s"] / gb for r in raw_runs],
        f"{after}_cpu_seconds_per_page": [r[f"{after}_cpu_s"] / pages for r in raw_runs],
        f"{after}_cpu_s_per_gb": [r[f"{after}_cpu_s"] / gb for r in raw_runs],
    }


def noise_warning(summary: dict, foreign_cpu_per_s: float | None) -> None:
    if foreign_cpu_per_s is not None and foreign_cpu_per_s > acct.FOREIGN_CPU_WARN_PER_S:
        summary["noise_warning"] = (f"other work used {foreign_cpu_per_s:.2f} CPU-s per second during "
                                    f"the runs (> {acct.FOREIGN_CPU_WARN_PER_S}); figures may be low")


def watched(run: Callable[[], object], ksoftirqd: dict[int, int]) -> tuple[object, dict[str, float]]:
    """run() in forked children, and what other tenants used meanwhile: (result, foreign CPU figures).

    The probe's own CPU is its waited-for children's (RUSAGE_CHILDREN); everything else busy in
    /proc/stat is foreign."""
    before, children0 = acct.HostSnapshot.now(ksoftirqd), acct.Rusage.children()
    wall0 = time.perf_counter()
    result = run()
    wall = time.perf_counter() - wall0
    delta = acct.host_delta(before, acct.HostSnapshot.now(ksoftirqd))
    return result, acct.foreign_cpu_per_s(delta, [acct.Rusage.children() - children0], wall)


def finish(summary: dict, noise: dict[str, float]) -> dict:
    """Adds the foreign-CPU figures and the noise warning to a summary."""
    summary.update(noise)
    noise_warning(summary, noise.get("foreign_cpu_per_s"))
    return summary


def warnings_of(summary: dict) -> str:
    """The table's note column: which warnings a record carries."""
    return ", ".join(w for k, w in (("stability_warning", "unstable"), ("noise_warning", "noisy host"))
                     if summary.get(k))
