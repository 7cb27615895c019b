#!/usr/bin/env python3
"""SMB Direct READ (rdmarig measure smbd) next to raw RDMA WRITE (rdmarig measure verbs), and the
server's copy variants against each other, in interleaved rounds on one RDMA device pair.

Run where an RDMA device exists, e.g. in the soft-RoCE guest:
    rdmarig guest run -- python3 benchmarks/smbd_vs_verbs.py [--sizes 64KiB,1MiB,4MiB] [--rounds 3]
Per round and size, one after the other: `measure smbd --copy zero-copy` (the server RDMA-WRITEs
from the registered file mapping: the protocol with no copy), `measure verbs --op write` from the
server's device to the client's with as many QPs as connections and a TX depth of the I/Os in
flight (the same bytes, no protocol), and `measure smbd --copy cpu-copy` (pread into a bounce
buffer first: the field report's 33-vs-46 GB/s question, asked of this machine). Prints the
throughputs, the ratio smbd/verbs (protocol overhead; aim >= 0.9 at >= 1 MiB), cpu-copy/zero-copy
throughput and server CPU per GB, and the medians over the rounds. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from results.tables import Column, Table, render  # noqa: E402
from rig.launch.smbd import SmbdOptions, run_point, target  # noqa: E402
from rig.rdma.measure import VerbsOptions  # noqa: E402
from rig.rdma.measure import run_point as verbs_point  # noqa: E402
from scenarios.errors import InputError  # noqa: E402
from scenarios.units import parse_size_list, parse_time  # noqa: E402

COLUMNS = [
    Column("round", "round"),
    Column.of("io_size_bytes", "I/O size", "{:.0f}"),
    Column.of("zero_copy_gbytes_per_s", "smbd zero-copy", "{:.4f}"),
    Column.of("verbs_gbytes_per_s", "verbs WRITE", "{:.4f}"),
    Column("smbd_vs_verbs", "smbd/verbs", "{:.3f}"),
    Column.of("cpu_copy_gbytes_per_s", "smbd cpu-copy", "{:.4f}"),
    Column("cpu_vs_zero", "cpu-copy/zero-copy", "{:.3f}"),
    Column.of("zero_copy_server_cpu_s_per_gb", "zero-copy server", "{:.2f}"),
    Column.of("cpu_copy_server_cpu_s_per_gb", "cpu-copy server", "{:.2f}"),
    Column.of("zero_copy_total_cpu_s_per_gb", "zero-copy both ends", "{:.2f}"),
    Column.of("verbs_total_cpu_s_per_gb", "verbs both ends", "{:.2f}"),
]


def one_round(opts: SmbdOptions, where, size: int, devices: tuple[str, str]) -> dict:
    zero = run_point(opts, where, size, "zero-copy").summary
    in_flight = opts.in_flight_for(size)
    vopts = VerbsOptions(op="write", sizes=[size], num_qps=opts.connections, tx_depth=in_flight,
                         cq_mod=max(1, in_flight // 2), duration_s=opts.duration_s, device=devices[1],
                         peer_device=devices[0], timeout_s=opts.timeout_s)
    vopts.check()
    verbs = verbs_point(vopts, size).summary
    cpu = run_point(opts, where, size, "cpu-copy").summary
    return {"io_size_bytes": size, "zero_copy_gbytes_per_s": zero["gbytes_per_s"],
            "verbs_gbytes_per_s": verbs["bw_average_gbytes_per_s"],
            "smbd_vs_verbs": zero["gbytes_per_s"] / verbs["bw_average_gbytes_per_s"],
            "cpu_copy_gbytes_per_s": cpu["gbytes_per_s"], "cpu_vs_zero": cpu["gbytes_per_s"] / zero["gbytes_per_s"],
            "zero_copy_server_cpu_s_per_gb": zero["server_cpu_s_per_gb"],
            "cpu_copy_server_cpu_s_per_gb": cpu["server_cpu_s_per_gb"],
            "cpu_copy_serving_system_cpu_s_per_gb": cpu["server_serving_system_cpu_s_per_gb"],
            "zero_copy_serving_system_cpu_s_per_gb": zero["server_serving_system_cpu_s_per_gb"],
            "zero_copy_total_cpu_s_per_gb": zero["server_cpu_s_per_gb"] + zero["client_cpu_s_per_gb"],
            "verbs_total_cpu_s_per_gb": verbs["cpu_total_s_per_gb"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64KiB,1MiB,4MiB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--duration", default="3s")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    try:
        from rig.rdma.devices import list_devices
        names = list_devices()
        sizes = [int(s) for s in parse_size_list(a.sizes, "--sizes")]
        opts = SmbdOptions(op="read", sizes=sizes, copies=["zero-copy", "cpu-copy"], connections=a.connections,
                           duration_s=parse_time(a.duration, "--duration"))
        opts.check()
    except InputError as exc:
        print(f"smbd_vs_verbs: {exc.one_line()}", file=sys.stderr)
        return 1
    if not names:
        print("smbd_vs_verbs: no RDMA device (run it in the soft-RoCE guest: rdmarig guest run -- ...)", file=sys.stderr)
        return 1
    devices = (names[0], names[1] if len(names) > 1 else names[0])
    rows = []
    with target(opts) as where:
        for r in range(a.rounds):
            for size in sizes:
                try:
                    rows.append({"round": r + 1, **one_round(opts, where, size, devices)})
                except (InputError, RuntimeError) as exc:       # the guest is shared: a round may fail
                    print(f"round {r + 1}, {size} B: failed: {exc}", file=sys.stderr)
                    continue
                print(render(Table("", COLUMNS, rows[-1:]), "md").splitlines()[-1], file=sys.stderr, flush=True)
    if not rows:
        return 1
    medians = []
    for size in sizes:
        mine = [r for r in rows if r["io_size_bytes"] == size]
        if mine:
            medians.append({"round": "median", **{k: statistics.median(r[k] for r in mine) for k in mine[0]
                                                  if k != "round"}})
    if a.json:
        print(json.dumps({"rows": rows, "medians": medians, "devices": devices}, indent=2))
        return 0
    title = (f"smbd READ (client {devices[0]}, server {devices[1]}) vs verbs WRITE {devices[1]} -> {devices[0]}, "
             f"{a.connections} connections / QPs, {a.duration} per point")
    notes = ["smbd/verbs: protocol overhead at the same bytes, connections and I/Os in flight",
             "server CPU: the serving processes (one kernel here: the host's softirq is counted on the client)",
             "both ends: client + server for smbd; the one verbs process for verbs"]
    print(render(Table(title, COLUMNS, rows + medians, notes), "md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
