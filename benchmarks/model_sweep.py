"""Benchmark: evaluate a 100,000-point sweep of the built-in SMB Direct scenario; print points/s,
then the time to build its plan report (models.report: columns, table order, table rows), then the
wall time of the interactive command `rdmarig plan smbdirect-2x200g` (a fresh interpreter each run,
as a user types it; ~1 s: keep it below 1.5 s).

    python benchmarks/model_sweep.py [--points 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.report import plan_report, table_rows  # noqa: E402
from models.sweep import evaluate_grid  # noqa: E402
from scenarios.schema import load_scenario  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    s = load_scenario("smbdirect-2x200g")
    per_path = max(1, args.points // len(s.copy_paths))
    sizes = np.geomspace(4096, 8 * 1024 * 1024, 100)
    cores = np.arange(1, max(2, per_path // len(sizes)) + 1)
    grid = {"workload.io_size": sizes, "workload.io_cores": cores}
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ev = evaluate_grid(s, grid)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"model sweep: {ev.points} points in {best * 1e3:.1f} ms (best of {args.repeat}), "
          f"{ev.points / best:,.0f} points/s; median {np.median(times) * 1e3:.1f} ms")
    t0 = time.perf_counter()
    report = plan_report(ev, 46e9)
    t1 = time.perf_counter()
    shown = table_rows(report["points"])
    t2 = time.perf_counter()
    print(f"plan report: {len(shown)} rows, report {t1 - t0:.2f} s (with 'what it takes' at 46 GB/s), "
          f"table rows {t2 - t1:.2f} s")
    root = Path(__file__).resolve().parents[1]
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, RDMARIG_STORE=str(Path(tmp) / "bench.sqlite"), PYTHONPATH=str(root))
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rig.cli", "plan", "smbdirect-2x200g"], cwd=root, env=env,
                           check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
    print(f"rdmarig plan smbdirect-2x200g: {min(walls):.2f} s best, {np.median(walls):.2f} s median of {args.repeat} "
          f"(a fresh interpreter each; the load on this machine: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
