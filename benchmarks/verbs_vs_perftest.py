#!/usr/bin/env python3
"""rdmarig (pyverbs) RDMA WRITE next to perftest's ib_write_bw: same device, same parameters.

Run where an RDMA device exists, e.g. in the soft-RoCE guest:
    rdmarig guest run -- python3 benchmarks/verbs_vs_perftest.py [--size 1MiB] [-n 300] [--qps 1] [--tx-depth 128]
Prints both bandwidths, both CPU costs (seconds per GB, both ends, each part counted once by
rig.accounting: user + system less the softirq served inside it + softirq) and the ratios
rdmarig/perftest; target: bandwidth ratio >= 0.95. Exit 0 when both ran, 1 otherwise.
--rounds N alternates the two N times and reports the median ratio (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rig.rdma import perftest  # noqa: E402
from rig.rdma.measure import VerbsOptions, run_point  # noqa: E402
from scenarios.errors import InputError  # noqa: E402
from scenarios.units import parse_size  # noqa: E402


def one_round(opts: VerbsOptions, size: int) -> dict:
    ours = run_point(opts, size)
    s, loc, rem = ours.summary, ours.ports["local"], ours.ports["remote"]
    theirs = perftest.run(opts.op, size, device=loc["device"], ib_port=loc["port"], gid_index=loc["gid_index"],
                          peer_device=rem["device"], peer_gid_index=rem["gid_index"], num_qps=opts.num_qps,
                          tx_depth=opts.tx_depth, cq_mod=ours.params["cq_mod_effective"],
                          post_list=opts.post_list, iterations=opts.iterations)
    return {"rdmarig_gbits_per_s": s["bw_average_gbits_per_s"], "perftest_gbits_per_s": theirs["bw_average_gbits_per_s"],
            "bw_ratio": s["bw_average_gbits_per_s"] / theirs["bw_average_gbits_per_s"],
            "rdmarig_cpu_s_per_gb": s["cpu_total_s_per_gb"], "perftest_cpu_s_per_gb": theirs["cpu_total_s_per_gb"],
            "cpu_ratio": s["cpu_total_s_per_gb"] / theirs["cpu_total_s_per_gb"],
            "rdmarig_cpu": {k: s[k] for k in ("cpu_user_s_per_gb", "cpu_system_s_per_gb", "cpu_softirq_s_per_gb")},
            "perftest_cpu": {k: theirs[k] for k in ("cpu_user_s_per_gb", "cpu_system_s_per_gb", "cpu_softirq_s_per_gb")},
            "perftest_command": theirs["command_client"], "device": loc["device"], "peer_device": rem["device"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", default="write", choices=["write", "read", "send"])
    ap.add_argument("--size", default="1MiB")
    ap.add_argument("-n", "--iterations", type=int, default=300)
    ap.add_argument("--qps", type=int, default=1)
    ap.add_argument("--tx-depth", type=int, default=128)
    ap.add_argument("--cq-mod", type=int, default=100)
    ap.add_argument("--device")
    ap.add_argument("--peer-device")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    try:
        size = int(parse_size(a.size, "--size"))
        opts = VerbsOptions(op=a.op, sizes=[size], num_qps=a.qps, tx_depth=a.tx_depth, cq_mod=a.cq_mod,
                            iterations=a.iterations, device=a.device, peer_device=a.peer_device)
        opts.check()
    except InputError as exc:
        print(f"verbs_vs_perftest: {exc.one_line()}", file=sys.stderr)
        return 1
    rounds = []
    for i in range(a.rounds):
        try:
            rounds.append(one_round(opts, size))
        except (InputError, RuntimeError) as exc:      # perftest under emulation fails now and then
            print(f"round {i + 1}: failed: {exc}", file=sys.stderr)
    if not rounds:
        return 1
    doc = {"op": a.op, "msg_bytes": size, "iterations": a.iterations, "qps": a.qps, "tx_depth": a.tx_depth,
           "rounds": rounds, "bw_ratio_median": statistics.median(r["bw_ratio"] for r in rounds),
           "cpu_ratio_median": statistics.median(r["cpu_ratio"] for r in rounds)}
    if a.json:
        print(json.dumps(doc, indent=2))
    else:
        for i, r in enumerate(rounds):
            print(f"round {i + 1}: {r['device']}->{r['peer_device']} {a.op} {size} B x {a.iterations}, {a.qps} QP, "
                  f"depth {a.tx_depth}: rdmarig {r['rdmarig_gbits_per_s']:.3f} Gbit/s, perftest "
                  f"{r['perftest_gbits_per_s']:.3f} Gbit/s, ratio {r['bw_ratio']:.3f}; CPU rdmarig "
                  f"{r['rdmarig_cpu_s_per_gb']:.2f} s/GB, perftest {r['perftest_cpu_s_per_gb']:.2f} s/GB, "
                  f"ratio {r['cpu_ratio']:.3f}")
        print(f"bandwidth ratio rdmarig/ib_{a.op}_bw (median of {len(rounds)}): {doc['bw_ratio_median']:.3f} "
              f"(target >= 0.95); CPU s/GB ratio: {doc['cpu_ratio_median']:.3f}")
        print(f"perftest: {rounds[0]['perftest_command']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
