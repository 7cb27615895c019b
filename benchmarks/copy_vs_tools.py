#!/usr/bin/env python3
"""The copy probes side by side with the tools people use today; prints ratios (probe / tool).

- memcpy probe vs `mbw -t0` (memcpy) at the same array sizes: GB/s ratio.
- rw (send() from a user buffer) vs `iperf3` on loopback; sendfile vs `iperf3 -Z` (sendfile), with
  the same buffer size, the sender pinned to the first CPU and the receiver to the second, and the
  same hot source iperf3 uses (one buffer of the block size, sent over and over).

Target: ratio >= 0.9 at 1 MiB and above, i.e. Python is not what limits the probe.
Usage: python3 benchmarks/copy_vs_tools.py [--seconds 2] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rig.copy import memcpy, sources, transfer  # noqa: E402

MiB = 1 << 20
MEMCPY_SIZES_MIB = (1, 4, 16, 64, 256)
SOCKET_SIZES = (64 << 10, 1 << 20)   # iperf3's TCP block size stops at 1 MiB


def mbw_gbytes_per_s(size_mib: int, runs: int) -> float:
    # pinned to the CPU the probe's copier uses, so both see the same core
    pin = ["taskset", "-c", str(min(os.sched_getaffinity(0)))] if shutil.which("taskset") else []
    out = subprocess.run(pin + ["mbw", "-q", "-t0", "-n", str(runs), str(size_mib)], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    per_run = [float(m) for m in re.findall(r"^\d+\s+Method: MEMCPY.*Copy: ([0-9.]+) MiB/s", out, re.M)]
    return float(np.median(per_run[1:])) * MiB / 1e9  # first run pays the page faults


def probe_memcpy_gbytes_per_s(size_bytes: int, count: int) -> float:
    (timing,) = memcpy.measure(size_bytes, 1, 1, count)
    return timing.total_gbytes_per_s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, server: subprocess.Popen, limit_s: float = 20.0) -> None:
    """Until the server listens on `port` (seen in /proc/net/tcp: a test connection would use up
    the one test `iperf3 -s -1` serves)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and server.poll() is None:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                return
        time.sleep(0.02)
    raise RuntimeError(f"iperf3 server did not listen on port {port} within {limit_s:.0f} s")


def iperf3_gbytes_per_s(block_bytes: int, seconds: float, zerocopy: bool) -> float:
    port = _free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port), "-A", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, server)
        cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-l", str(block_bytes), "-t", str(seconds),
               "-A", "0", "-J"] + (["-Z"] if zerocopy else [])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
        doc = json.loads(out.stdout)
        return doc["end"]["sum_received"]["bits_per_second"] / 8 / 1e9
    finally:
        try:
            server.wait(timeout=10)  # -1: the server exits after one test
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def probe_socket_gbytes_per_s(path: str, source: sources.Source, block_bytes: int, seconds: float) -> float:
    return transfer.cpu_split(transfer.run(path, source, block_bytes, duration_s=seconds))["gbytes_per_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repetitions", type=int, default=3)
    args = ap.parse_args()
    missing = [t for t in ("mbw", "iperf3") if not shutil.which(t)]
    if missing:
        print(f"missing tools: {', '.join(missing)} (Debian packages mbw, iperf3)", file=sys.stderr)
        return 2

    print("memcpy: probe (glibc memmove via ctypes, page-aligned) vs mbw -t0, one copier, both on the "
          f"same CPU, median of {args.repetitions} alternating runs")
    print(f"{'size [MiB]':>10} {'probe [GB/s]':>13} {'mbw [GB/s]':>11} {'ratio':>6}")
    for size in MEMCPY_SIZES_MIB:
        count, _ = memcpy.calibrate_count(size * MiB)
        ours, theirs = [], []
        for _ in range(args.repetitions):
            ours.append(probe_memcpy_gbytes_per_s(size * MiB, count))
            theirs.append(mbw_gbytes_per_s(size, runs=max(10, min(200, 2000 // size))))
        o, t = float(np.median(ours)), float(np.median(theirs))
        print(f"{size:>10} {o:>13.2f} {t:>11.2f} {o / t:>6.2f}")

    print(f"\nTCP loopback, sender on CPU 0, receiver on CPU 1, {args.seconds:.0f} s per run, "
          f"median of {args.repetitions} (runs alternate probe and tool)")
    print(f"{'pair':<28} {'block [B]':>9} {'probe [GB/s]':>13} {'iperf3 [GB/s]':>14} {'ratio':>6}")
    pairs = (("rw (send from user buffer)", "rw", "anon", False),
             ("sendfile vs iperf3 -Z", "sendfile", "tmpfs", True))
    for label, path, kind, zc in pairs:
        for block in SOCKET_SIZES:
            source = sources.open_source(kind, block)  # one hot block, as iperf3 sends
            try:
                ours, theirs = [], []
                for _ in range(args.repetitions):
                    ours.append(probe_socket_gbytes_per_s(path, source, block, args.seconds))
                    theirs.append(iperf3_gbytes_per_s(block, args.seconds, zc))
            finally:
                source.close()
            o, t = float(np.median(ours)), float(np.median(theirs))
            print(f"{label:<28} {block:>9} {o:>13.2f} {t:>14.2f} {o / t:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
