"""Benchmark: what the intervals cost `rdmarig plan` (the default sample count keeps it interactive).

    python benchmarks/plan_intervals.py [--scenario smbdirect-2x200g] [--samples 0,250,500,1000,2000,4000]
                                        [--rounds 7]

Two figures per sample count, rounds interleaved so a busy machine weighs on every count alike:
  - the whole command, `rdmarig plan SCENARIO --samples N` as a user runs it (a new Python each
    time: imports, the model, the table, the record stored in a fresh store), wall seconds;
  - the model part alone in this process: models.report.plan_report(evaluation, None, N).
The load average is printed with them: on the shared 2-core machine it moves the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.report import plan_report  # noqa: E402
from models.sweep import evaluate_scenario  # noqa: E402
from models.uncertainty import DEFAULT_SAMPLES  # noqa: E402
from scenarios.schema import load_scenario  # noqa: E402


def command_seconds(scenario: str, samples: int, store: Path) -> float:
    exe = ROOT / ".venv" / "bin" / "rdmarig"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "rig.cli"]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "plan", scenario, "--samples", str(samples), "--store", str(store)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0


def model_seconds(scenario: str, samples: int) -> float:
    s = load_scenario(scenario)
    t0 = time.perf_counter()
    plan_report(evaluate_scenario(s), None, samples)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", default="smbdirect-2x200g")
    ap.add_argument("--samples", default=f"0,250,500,{DEFAULT_SAMPLES},2000,4000")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    counts = [int(v) for v in args.samples.split(",")]
    command: dict[int, list[float]] = {n: [] for n in counts}
    model: dict[int, list[float]] = {n: [] for n in counts}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            for n in counts:
                command[n].append(command_seconds(args.scenario, n, Path(tmp) / "bench.sqlite"))
                model[n].append(model_seconds(args.scenario, n))
    print(f"rdmarig plan {args.scenario} --samples N: {args.rounds} rounds, load average "
          f"{min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} CPUs (default N = {DEFAULT_SAMPLES})")
    print(f"{'N':>6} | {'command median':>14} | {'min':>6} | {'max':>6} | {'model part median':>17} | {'min':>6}")
    for n in counts:
        c, m = command[n], model[n]
        print(f"{n:>6} | {statistics.median(c):>12.3f} s | {min(c):>4.3f} s | {max(c):>4.3f} s | "
              f"{statistics.median(m) * 1e3:>14.1f} ms | {min(m) * 1e3:>3.1f} ms")


if __name__ == "__main__":
    main()
