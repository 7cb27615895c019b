#!/usr/bin/env python3
"""Benchmark: the compiled RDMA loop's own cost per work request, with no device work.

rig.rdma.native.self_cost runs the bandwidth loop (rr_bw_run: post, poll, stamp, bookkeeping)
over a device whose post_send only notes signaled WRs and whose poll_cq hands them back at once.
1e9 / (ns per WR) is the most WRs per second the loop can drive from one core on this CPU,
whatever the NIC: e.g. 2x200 Gbit/s of 4 KiB messages needs ~12 million per second.

    python benchmarks/loop_cost.py [--rounds 5] [--wrs 2000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rig.rdma import native  # noqa: E402

CASES = [dict(post_list=1, cq_mod=100), dict(post_list=8, cq_mod=64), dict(post_list=1, cq_mod=100, num_qps=4)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--wrs", type=int, default=2_000_000)
    a = ap.parse_args()
    ok, why = native.available()
    if not ok:
        print(f"compiled loop not available: {why}")
        return 1
    for case in CASES:
        runs = [native.self_cost(wrs=a.wrs, **case) for _ in range(a.rounds)]
        ns = [r["ns_per_wr"] for r in runs]
        med = statistics.median(ns)
        label = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in case.items())
        print(f"compiled loop, {label}: {med:.1f} ns per WR ({min(ns):.1f}..{max(ns):.1f}, {a.rounds} runs of "
              f"{runs[0]['wrs']:.0f} WRs), {statistics.median(r['ns_per_post_call'] for r in runs):.1f} ns per "
              f"post call; ceiling {1e3 / med:.1f} million WRs/s per core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
