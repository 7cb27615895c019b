#!/usr/bin/env python3
"""rdmarig's RDMA loops next to perftest on the same device with the same parameters.

Run where an RDMA device exists, e.g. in the soft-RoCE guest (`make bench` does):
    rdmarig guest run -- .venv/bin/python benchmarks/verbs_vs_perftest.py --rounds 5
Per round, interleaved (which of the two goes first alternates): RDMA WRITE, READ and SEND
bandwidth at each size against ib_write_bw / ib_read_bw / ib_send_bw (post list 1, the same
TX depth and CQ moderation, no inline data on either side), then ping-pong latency at 64 B
against ib_write_lat / ib_send_lat. Prints per point the median of the per-round ratios and
their spread (min..max), message rates beside bandwidth, CPU seconds per GB of both loops
(counted by rig.accounting for both: perftest's two processes through their wait4 rusage; for
both tools the loop's share as the difference of a long and a short run), and the compiled loop's own cost per
WR over a device that does nothing. Goals (issue 13): bandwidth ratio >= 0.95, latency ratio
<= 1.2, CPU ratio <= 1. --python-loop adds the Python loop's figures.
Exit 0 when every point ran at least once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rig.rdma import native, perftest, perftest_lat  # noqa: E402
from rig.rdma.devices import discover  # noqa: E402
from rig.rdma.measure import VerbsOptions, run_point  # noqa: E402
from scenarios.errors import InputError  # noqa: E402
from scenarios.units import format_size, parse_size_list  # noqa: E402

BW_GOAL, LAT_GOAL = 0.95, 1.2
US = 1e-6


def iterations_for(size: int, budget_bytes: int, cap: int, cq_mod: int) -> int:
    """Enough WRs to move budget_bytes (at most cap), a multiple of the CQ moderation, at least
    three of them (the short perftest run for the CPU difference has one)."""
    n = max(3 * cq_mod, min(cap, budget_bytes // size))
    return n // cq_mod * cq_mod


def ours(opts: VerbsOptions, size: int, loop: str) -> dict[str, Any]:
    """rdmarig's summary of one point with the loop asked for."""
    os.environ[native.ENV_LOOP] = "python" if loop == "python" else ""
    try:
        return run_point(opts, size).summary
    finally:
        os.environ.pop(native.ENV_LOOP, None)


def measured_pair(opts: VerbsOptions, size: int, loop: str, theirs: Callable[[], dict[str, Any]],
                  perftest_first: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(rdmarig's summary, perftest's report) of one point, in the order asked for."""
    if perftest_first:
        t = theirs()
        return ours(opts, size, loop), t
    o = ours(opts, size, loop)
    return o, theirs()


def perftest_gbits_per_s(report: dict[str, Any], size: int) -> float:
    """perftest prints Gbit/s with 2 decimals and Mpps with 5 or so: at 64 B the bandwidth column
    says 0.01 for anything from 0.005 to 0.015, at 1 MiB the rate column says 3e-05. The figure
    from whichever column resolves it better (the average is WRs x size / the same time in both)."""
    bw, mpps = report["bw_average_gbits_per_s"], report["msg_rate_mpps"]
    from_rate = mpps * 1e6 * size * 8 / 1e9
    bw_digits, rate_digits = (bw / 0.005 if bw else 0), (mpps / 0.000005 if mpps else 0)
    return from_rate if rate_digits > bw_digits else bw


def loop_cpu_s_per_gb(long: dict[str, Any], short: dict[str, Any]) -> float:
    """The loop's CPU per GB, counted alike for both tools: the difference of a long and a short
    run of the same point, per byte of the difference (both counted by rig.accounting). perftest's
    CPU is both processes' whole lives (set-up, connection, teardown), rdmarig's window its timed
    loop with the pipeline's fill and drain: the difference takes out what both runs share."""
    cpu = [r["cpu_total_s_per_gb"] * r["bytes"] / 1e9 for r in (long, short)]
    return (cpu[0] - cpu[1]) / ((long["bytes"] - short["bytes"]) / 1e9)


def bw_pair(op: str, size: int, a: argparse.Namespace, loop: str) -> dict[str, Any]:
    n = iterations_for(size, a.budget, a.max_iterations, a.cq_mod)
    n_short = max(a.cq_mod, n // 10 // a.cq_mod * a.cq_mod)      # < n / 2: iterations_for gives >= 3 cq_mod
    opts = VerbsOptions(op=op, sizes=[size], tx_depth=a.tx_depth, cq_mod=a.cq_mod, iterations=n,
                        warmup_iterations=a.cq_mod, device=a.device, peer_device=a.peer_device)

    def theirs(iterations: int) -> dict[str, Any]:
        return perftest.run(op, size, **a.ports, tx_depth=a.tx_depth, cq_mod=opts.params(size)["cq_mod_effective"],
                            post_list=1, inline_bytes=0, iterations=iterations)

    s, t = measured_pair(opts, size, loop, lambda: theirs(n), a.perftest_first)
    theirs_gbits = perftest_gbits_per_s(t, size)
    theirs_cpu = loop_cpu_s_per_gb(t, theirs(n_short))
    ours_cpu = loop_cpu_s_per_gb(s, ours(replace(opts, iterations=n_short), size, loop))
    return {"iterations": n, "loop": s["loop"],
            "ours_gbits_per_s": s["bw_average_gbits_per_s"], "theirs_gbits_per_s": theirs_gbits,
            "ours_mpps": s["msg_rate_mpps"], "theirs_mpps": theirs_gbits * 1e9 / 8 / size / 1e6,
            "ours_cpu_s_per_gb": ours_cpu, "theirs_cpu_s_per_gb": theirs_cpu,
            "ours_window_cpu_s_per_gb": s["cpu_total_s_per_gb"],
            "theirs_lifetime_cpu_s_per_gb": t["cpu_total_s_per_gb"],
            "bw_ratio": s["bw_average_gbits_per_s"] / theirs_gbits,
            "cpu_ratio": ours_cpu / theirs_cpu, "window_cpu_ratio": s["cpu_total_s_per_gb"] / theirs_cpu,
            "perftest_command": t["command_client"]}


def lat_pair(op: str, size: int, a: argparse.Namespace, loop: str) -> dict[str, Any]:
    opts = VerbsOptions(op=op, sizes=[size], latency=True, latency_mode="pingpong", iterations=a.lat_iterations,
                        warmup_iterations=100, device=a.device, peer_device=a.peer_device)
    s, t = measured_pair(opts, size, loop, lambda: perftest_lat.run(
        op, size, **a.ports, iterations=a.lat_iterations, inline_bytes=0), a.perftest_first)
    # perftest's "typical" is its median (the middle of the sorted samples)
    return {"loop": s["loop"], "ours_min_s": s["latency_min_s"], "ours_median_s": s["latency_median_s"],
            "theirs_min_s": t["latency_min_s"], "theirs_median_s": t["latency_typical_s"],
            "min_ratio": s["latency_min_s"] / t["latency_min_s"],
            "median_ratio": s["latency_median_s"] / t["latency_typical_s"], "perftest_command": t["command_client"]}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}..{max(values):.3f}, n={len(values)})"


def run_rounds(a: argparse.Namespace) -> dict[str, Any]:
    loops = ["auto"] + (["python"] if a.python_loop else [])
    points: dict[str, list[dict[str, Any]]] = {}
    jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    for loop in loops:
        for op in a.ops:
            for size in a.sizes:
                jobs.append((f"bw {op} {size} {loop}", lambda op=op, size=size, loop=loop: bw_pair(op, size, a, loop)))
        for op in ("write", "send"):
            jobs.append((f"lat {op} {a.lat_size} {loop}",
                         lambda op=op, loop=loop: lat_pair(op, a.lat_size, a, loop)))
    t0 = time.monotonic()
    for r in range(a.rounds):
        if r and a.stop_after_min and time.monotonic() - t0 > a.stop_after_min * 60:
            print(f"{r} of {a.rounds} rounds: --stop-after {a.stop_after_min:g} min has passed", file=sys.stderr, flush=True)
            break
        a.perftest_first = r % 2 == 1
        for key, job in jobs:
            try:
                res = job()
            except (InputError, RuntimeError, ValueError) as exc:   # perftest under emulation fails now and then
                print(f"round {r + 1} {key}: failed: {exc}", file=sys.stderr, flush=True)
                continue
            points.setdefault(key, []).append(res)
            print(f"round {r + 1} {key}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                        for k, v in res.items() if k != "perftest_command"),
                  file=sys.stderr, flush=True)
    return points


def report(points: dict[str, list[dict[str, Any]]], cost: dict[str, Any]) -> list[str]:
    out = ["bandwidth (average) and message rate, rdmarig / perftest: median ratio (min..max, rounds)"]
    for key, rs in points.items():
        kind, op, size, loop = key.split()
        if kind != "bw":
            continue
        ratio = statistics.median(r["bw_ratio"] for r in rs)
        out.append(f"  {op:5} {format_size(int(size)):>7} [{rs[0]['loop']} loop]: BW {spread([r['bw_ratio'] for r in rs])}"
                   f" {'ok' if ratio >= BW_GOAL else 'BELOW'} (goal >= {BW_GOAL}); "
                   f"{statistics.median(r['ours_gbits_per_s'] for r in rs):.3f} vs "
                   f"{statistics.median(r['theirs_gbits_per_s'] for r in rs):.3f} Gbit/s, "
                   f"{statistics.median(r['ours_mpps'] for r in rs):.4f} vs "
                   f"{statistics.median(r['theirs_mpps'] for r in rs):.4f} Mpps; "
                   f"CPU/GB {spread([r['cpu_ratio'] for r in rs])} (goal <= 1): "
                   f"{statistics.median(r['ours_cpu_s_per_gb'] for r in rs):.1f} vs "
                   f"{statistics.median(r['theirs_cpu_s_per_gb'] for r in rs):.1f} s/GB in the loop "
                   f"(rdmarig's timed window alone: ratio {spread([r['window_cpu_ratio'] for r in rs])})")
    out.append("ping-pong latency (half round trip), rdmarig / ib_*_lat: median ratio (min..max, rounds)")
    for key, rs in points.items():
        kind, op, size, loop = key.split()
        if kind != "lat":
            continue
        out.append(f"  {op:5} {format_size(int(size)):>7} [{rs[0]['loop']} loop]: min {spread([r['min_ratio'] for r in rs])}, "
                   f"median {spread([r['median_ratio'] for r in rs])} (goal <= {LAT_GOAL}); "
                   f"min {statistics.median(r['ours_min_s'] for r in rs) / US:.1f} vs "
                   f"{statistics.median(r['theirs_min_s'] for r in rs) / US:.1f} us, median "
                   f"{statistics.median(r['ours_median_s'] for r in rs) / US:.1f} vs "
                   f"{statistics.median(r['theirs_median_s'] for r in rs) / US:.1f} us")
    if cost:
        out.append(f"compiled loop's own cost (no device work, {cost['rounds']} runs of {cost['wrs']:.0f} WRs, "
                   f"post list 1, CQ moderation 100): {spread(cost['ns_per_wr'])} ns per WR")
    else:
        out.append(f"compiled loop not available: {native.available()[1]}")
    return out


def loop_cost(rounds: int) -> dict[str, Any]:
    if not native.available()[0]:
        return {}
    runs = [native.self_cost() for _ in range(rounds)]
    return {"rounds": rounds, "wrs": runs[0]["wrs"], "ns_per_wr": [r["ns_per_wr"] for r in runs]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", default="write,read,send")
    ap.add_argument("--sizes", default="64,4KiB,64KiB,1MiB")
    ap.add_argument("--budget", default="64MiB", help="bytes per bandwidth run (iterations = budget / size)")
    ap.add_argument("--max-iterations", type=int, default=60000)
    ap.add_argument("--tx-depth", type=int, default=128)
    ap.add_argument("--cq-mod", type=int, default=100)
    ap.add_argument("--lat-size", default="64")
    ap.add_argument("--lat-iterations", type=int, default=2000)
    ap.add_argument("--device")
    ap.add_argument("--peer-device")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stop-after", dest="stop_after_min", type=float, default=0,
                    help="minutes: start no new round after this (0: run every round)")
    ap.add_argument("--python-loop", action="store_true", help="also the Python loop (the fallback)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    try:
        a.ops = [o for o in a.ops.split(",") if o]
        a.sizes = [int(s) for s in parse_size_list(a.sizes, "--sizes")]
        a.lat_size = int(parse_size_list(a.lat_size, "--lat-size")[0])
        a.budget = int(parse_size_list(a.budget, "--budget")[0])
        for op in a.ops:
            VerbsOptions(op=op, sizes=a.sizes, tx_depth=a.tx_depth, cq_mod=a.cq_mod).check()
        local = discover(a.device, None, None)
        remote = discover(a.peer_device, None, None) if a.peer_device else local
        a.ports = {"device": local.device, "ib_port": local.port, "gid_index": local.gid_index,
                   "peer_device": remote.device, "peer_gid_index": remote.gid_index}
    except InputError as exc:
        print(f"verbs_vs_perftest: {exc.one_line()}", file=sys.stderr)
        return 1
    print(f"compiled loop: {'available' if native.available()[0] else native.available()[1]}", file=sys.stderr)
    cost = loop_cost(3)
    points = run_rounds(a)
    if a.json:
        print(json.dumps({"points": points, "loop_cost": cost}, indent=2))
    else:
        print("\n".join(report(points, cost)))
    want = len(a.ops) * len(a.sizes) + 2
    return 0 if len([k for k in points if k.endswith("auto")]) == want else 1


if __name__ == "__main__":
    raise SystemExit(main())
