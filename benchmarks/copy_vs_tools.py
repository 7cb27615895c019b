#!/usr/bin/env python3
"""The copy probes side by side with the tools people use today; prints ratios (probe / tool).

- memcpy probe vs mbw's memcpy test at 1..256 MiB, like with like: one glibc memcpy of the whole
  array per iteration, each iteration timed, both pinned to the same CPU, both arrays filled before
  (no first-touch faults), 4 KiB pages in both (no THP advice), the same relative alignment
  (mbw's malloc'd arrays both sit 16 bytes into a page, the probe's at 0: dst - src is a multiple of
  4 KiB in both, so glibc takes the same path), the same store type (glibc picks by size: rep movsb,
  a vector loop, non-temporal stores from its threshold on). Rounds interleave probe and mbw; each
  round gives a ratio; the median, min and max over rounds are printed.
  Three statistics, each compared with its own kind: the median of per-iteration rates (mbw's
  per-line figure; the probe stamps each copy), the best iteration (least disturbed by other
  tenants; mbw's 1 us clock makes it coarse below ~4 MiB) and the mean over all iterations (mbw's
  AVG line; the probe's total bytes over total time, which counts every moment a tenant held the
  core).
  Which `mbw -tN` calls memcpy is checked with perf where it can be: Debian's mbw 1.2.2 prints
  "Method: MEMCPY" for `-t0` but runs the `b[i]=a[i]` loop there, and calls memcpy for `-t1`
  (printed "DUMB"). The scalar loop is shown too, for reference only.
- rw (send() from a user buffer) vs `iperf3` on loopback; sendfile vs `iperf3 -Z` (sendfile), with
  the same buffer size, the sender pinned to the first CPU and the receiver to the second, and the
  same hot source iperf3 uses (one buffer of the block size, sent over and over).

Targets: memcpy ratio >= 0.95 at every size; socket ratio >= 0.9 at 1 MiB.
Usage: python3 benchmarks/copy_vs_tools.py [--rounds 5] [--part memcpy|socket|all] [--sizes-mib 1,64]
       [--seconds 2]
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
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rig.copy import memcpy, sources, transfer  # noqa: E402

MiB = 1 << 20
MEMCPY_SIZES_MIB = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SOCKET_SIZES = (64 << 10, 1 << 20)   # iperf3's TCP block size stops at 1 MiB


def _pin() -> list[str]:
    # mbw runs on the CPU the probe's copier uses, so both see the same core
    return ["taskset", "-c", str(min(os.sched_getaffinity(0)))] if shutil.which("taskset") else []


def mbw_iterations(test: int, size_mib: int, iterations: int) -> tuple[list[float], float]:
    """mbw's per-iteration rates (GB/s) and their mean (total bytes over total time, as its AVG
    line). The first iteration is dropped: its caches are cold (the probe warms up before timing)."""
    out = subprocess.run(_pin() + ["mbw", "-q", f"-t{test}", "-n", str(iterations + 1), str(size_mib)],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    per_run = [float(m) * MiB / 1e9 for m in re.findall(r"^\d+\s+Method: \w+.*Copy: ([0-9.]+) MiB/s", out, re.M)]
    rest = per_run[1:]
    mean = len(rest) / sum(1 / r for r in rest)  # total bytes over total time, the first run left out
    return rest, mean


def _memcpy_symbol_share(test: int) -> float | None:
    """Share of mbw -tN's CPU samples in glibc's memcpy/memmove (perf), None where perf cannot say."""
    if not shutil.which("perf"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        rec = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", data, "--", "mbw", "-q",
                              f"-t{test}", "-n", "20", "16"], capture_output=True, text=True, timeout=120)
        if rec.returncode != 0:
            return None
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--sort", "sym"],
                             capture_output=True, text=True, timeout=120).stdout
    shares = [float(m.group(1)) for m in re.finditer(r"^\s+([0-9.]+)%\s+\[\.\]\s+\S*mem(?:move|cpy)", rep, re.M)]
    return sum(shares) / 100 if rep.strip() else None


def mbw_memcpy_test() -> tuple[int, str]:
    """Which `mbw -tN` calls memcpy, and how that was found out."""
    shares = {t: _memcpy_symbol_share(t) for t in (0, 1)}
    if None not in shares.values():
        memcpy_test = max(shares, key=shares.get)
        return memcpy_test, (f"perf: memcpy/memmove is {shares[0]:.0%} of mbw -t0's samples, "
                             f"{shares[1]:.0%} of -t1's")
    return 1, "assumed (no perf): Debian's mbw 1.2.2 calls memcpy in -t1, not in -t0"


def probe_iterations(size_bytes: int, iterations: int) -> tuple[list[float], float]:
    """The probe's per-copy rates (GB/s; one copy per stamp, as mbw) and its total over the timing."""
    (timing,) = memcpy.measure(size_bytes, 1, 1, iterations, per_batch=1)
    return [size_bytes / b / 1e9 for b in timing.per_process_batch_s[0]], timing.total_gbytes_per_s


def _spread(values: list[float]) -> str:
    return f"{float(np.median(values)):.3f} [{min(values):.3f}..{max(values):.3f}]"


def memcpy_part(rounds: int, sizes_mib: list[int]) -> None:
    memcpy_test, how = mbw_memcpy_test()
    scalar_test = 1 - memcpy_test
    print(f"memcpy: probe (glibc memmove via ctypes, page-aligned) vs mbw -t{memcpy_test} (glibc memcpy; "
          f"{how}); mbw -t{scalar_test} is the b[i]=a[i] loop, shown for reference")
    print(f"one copier, pinned to CPU {min(os.sched_getaffinity(0))}, {rounds} rounds, probe and mbw "
          "alternating first; ratio = probe / mbw: median [min..max] over rounds")
    print(f"{'size [MiB]':>10} {'iter':>5} {'probe median [GB/s]':>19} {'mbw median [GB/s]':>17} "
          f"{'ratio of medians':>24} {'ratio of bests':>24} {'ratio of means':>24} {'vs scalar loop':>14}")
    for size in sizes_mib:
        iterations = max(10, min(200, 2000 // size))
        per_round = []
        for r in range(rounds):
            order = ("probe", "mbw") if r % 2 == 0 else ("mbw", "probe")
            got = {}
            for who in order:
                got[who] = (probe_iterations(size * MiB, iterations) if who == "probe"
                            else mbw_iterations(memcpy_test, size, iterations))
            scalar, _ = mbw_iterations(scalar_test, size, iterations)
            (p_runs, p_mean), (m_runs, m_mean) = got["probe"], got["mbw"]
            per_round.append({"probe": float(np.median(p_runs)), "mbw": float(np.median(m_runs)),
                              "median_ratio": float(np.median(p_runs) / np.median(m_runs)),
                              "best_ratio": max(p_runs) / max(m_runs),
                              "mean_ratio": p_mean / m_mean,
                              "scalar_ratio": float(np.median(p_runs) / np.median(scalar))})
        col = {k: [r[k] for r in per_round] for k in per_round[0]}
        print(f"{size:>10} {iterations:>5} {np.median(col['probe']):>19.2f} {np.median(col['mbw']):>17.2f} "
              f"{_spread(col['median_ratio']):>24} {_spread(col['best_ratio']):>24} {_spread(col['mean_ratio']):>24} "
              f"{np.median(col['scalar_ratio']):>14.2f}", flush=True)


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
    ap.add_argument("--repetitions", type=int, default=3, help="socket runs per pair")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved memcpy rounds per size")
    ap.add_argument("--part", choices=("memcpy", "socket", "all"), default="all")
    ap.add_argument("--sizes-mib", default=",".join(map(str, MEMCPY_SIZES_MIB)),
                    help="memcpy sizes in MiB, comma list")
    args = ap.parse_args()
    missing = [t for t in ("mbw", "iperf3") if not shutil.which(t)]
    if missing:
        print(f"missing tools: {', '.join(missing)} (Debian packages mbw, iperf3)", file=sys.stderr)
        return 2

    if args.part in ("memcpy", "all"):
        memcpy_part(args.rounds, [int(x) for x in args.sizes_mib.split(",")])
    if args.part == "memcpy":
        return 0
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
